/* Client liveness (src/server/peer.c) on real loopback TCP connections: the
 * search finds exactly the accepted socket of a given client among several,
 * and a socket reads as gone after the client closes or resets it, but not
 * while it is open, idle or with unread bytes waiting. */
#include "testutil.h"

#ifdef OB_HAVE_SERVER
#include "server/peer.c"

#include <netinet/tcp.h>
#include <unistd.h>

typedef struct conn {
    int client, served; /* the client's socket and the server's accepted one */
    int client_port;
} conn;

static int port_of(int fd, bool peer) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
    assert_int_equal(r, 0);
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A listener on the loopback address of `family` (port chosen by the kernel),
 * or -1 when the family is not available. */
static int listen_loopback(int family) {
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 8)) {
        close(fd);
        return -1;
    }
    return fd;
}

static conn connect_to(int listener) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(listener, (struct sockaddr *)&ss, &len), 0);
    conn c;
    c.client = socket(ss.ss_family, SOCK_STREAM, 0);
    assert_true(c.client >= 0);
    assert_int_equal(connect(c.client, (struct sockaddr *)&ss, len), 0);
    c.served = accept(listener, NULL, NULL);
    assert_true(c.served >= 0);
    c.client_port = port_of(c.client, false);
    return c;
}

static void check_family(int family, const char *addr_text) {
    int listener = listen_loopback(family);
    if (listener < 0) {
        if (family == AF_INET) fail_msg("cannot listen on 127.0.0.1");
        print_message("SKIP: no %s loopback here\n", addr_text);
        skip();
    }
    int port = port_of(listener, false);
    conn c[3];
    for (int i = 0; i < 3; i++) c[i] = connect_to(listener);

    /* each client's own accepted socket, never another's or the listener */
    for (int i = 0; i < 3; i++) assert_int_equal(ob_peer_find_socket(addr_text, c[i].client_port, port), c[i].served);
    assert_int_equal(ob_peer_find_socket(addr_text, c[0].client_port, port + 1 == 65536 ? 1 : port + 1), -1);
    assert_int_equal(ob_peer_find_socket(addr_text, 1, port), -1);

    /* open and idle; then with a pipelined request waiting: alive */
    assert_false(ob_peer_gone(c[0].served));
    assert_int_equal(write(c[0].client, "GET / HTTP/1.1\r\n", 16), 16);
    usleep(10000);
    assert_false(ob_peer_gone(c[0].served));
    char buf[16];
    assert_int_equal(recv(c[0].served, buf, sizeof buf, MSG_DONTWAIT), 16); /* the check only peeked */

    /* orderly close */
    close(c[1].client);
    usleep(10000);
    assert_true(ob_peer_gone(c[1].served));
    assert_false(ob_peer_gone(c[2].served)); /* the others are untouched */

    /* reset (SO_LINGER 0 sends RST) */
    struct linger lg = { 1, 0 };
    assert_int_equal(setsockopt(c[2].client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(c[2].client);
    usleep(10000);
    assert_true(ob_peer_gone(c[2].served));

    close(c[0].client);
    for (int i = 0; i < 3; i++) close(c[i].served);
    close(listener);
}

static void test_ipv4(void **state) {
    (void)state;
    check_family(AF_INET, "127.0.0.1");
}

static void test_ipv6(void **state) {
    (void)state;
    check_family(AF_INET6, "::1");
    check_family(AF_INET6, "[::1]");
}

static void test_bad_input(void **state) {
    (void)state;
    assert_int_equal(ob_peer_find_socket(NULL, 1, 1), -1);
    assert_int_equal(ob_peer_find_socket("", 1, 1), -1);
    assert_int_equal(ob_peer_find_socket("not an address", 1, 1), -1);
    assert_int_equal(ob_peer_find_socket("[", 1, 1), -1);
    assert_int_equal(ob_peer_find_socket("127.0.0.1.1", 1, 1), -1);
    char longtext[200];
    memset(longtext, '1', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    assert_int_equal(ob_peer_find_socket(longtext, 1, 1), -1);
    assert_false(ob_peer_gone(-1));
    /* not a socket: a pipe whose writer closed reads as gone, an open one not */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_false(ob_peer_gone(p[0]));
    close(p[1]);
    assert_true(ob_peer_gone(p[0]));
    close(p[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

OB_TEST_MAIN_NOT_BUILT("the server libraries (civetweb, jansson)")

#endif
