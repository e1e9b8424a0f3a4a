/* Client liveness for waiting handlers: see peer.h. Linux: the search walks
 * /proc/self/fd; elsewhere it finds nothing and writes detect the client. */
#include "server/peer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* An address in IPv6 form (IPv4 as ::ffff:a.b.c.d), so that a dual-stack
 * listener's v4-mapped peers compare equal to their dotted text. */
typedef struct endpoint {
    unsigned char addr[16];
    int port;
} endpoint;

static void map_v4(const void *v4, unsigned char out[16]) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

static bool endpoint_from_text(const char *text, int port, endpoint *e) {
    char buf[64];
    size_t n = strlen(text);
    if (n >= sizeof buf) return false;
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') { /* "[::1]" */
        memcpy(buf, text + 1, n - 2);
        buf[n - 2] = 0;
    } else {
        memcpy(buf, text, n + 1);
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1) map_v4(&a4, e->addr);
    else if (inet_pton(AF_INET6, buf, &a6) == 1) memcpy(e->addr, &a6, 16);
    else return false;
    e->port = port;
    return true;
}

static bool endpoint_from_sockaddr(const struct sockaddr_storage *ss, endpoint *e) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        map_v4(&a->sin_addr, e->addr);
        e->port = ntohs(a->sin_port);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        memcpy(e->addr, &a->sin6_addr, 16);
        e->port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

/* fd is a TCP/IP socket from local_port to exactly `peer`. */
static bool socket_matches(int fd, const endpoint *peer, int local_port) {
    struct stat st;
    if (fstat(fd, &st) || !S_ISSOCK(st.st_mode)) return false;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    endpoint e;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) || !endpoint_from_sockaddr(&ss, &e) || e.port != local_port)
        return false;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) || !endpoint_from_sockaddr(&ss, &e)) return false;
    return e.port == peer->port && !memcmp(e.addr, peer->addr, 16);
}

int ob_peer_find_socket(const char *remote_addr, int remote_port, int local_port) {
    endpoint peer;
    if (!remote_addr || !endpoint_from_text(remote_addr, remote_port, &peer)) return -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int found = -1;
    for (struct dirent *de; found < 0 && (de = readdir(d));) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || fd < 0 || fd == dirfd(d)) continue;
        if (socket_matches((int)fd, &peer, local_port)) found = (int)fd;
    }
    closedir(d);
    return found;
}

bool ob_peer_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP)) return true;
    if (!(p.revents & POLLIN)) return false;
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0) return true; /* orderly shutdown */
    return k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}
