/* Is the HTTP client still there? civetweb notices a client that left only
 * when a write fails, and gives no access to the connection's socket. A
 * handler that waits for a long generation before it writes anything (a
 * non-streamed reply, a request still queued) finds its own socket instead:
 * the one TCP socket of this process whose peer is the client's address and
 * port and whose local port is the server's. That 4-tuple names exactly one
 * established connection, so the search cannot pick another client's socket.
 * While the handler runs, civetweb neither reads from nor closes the socket,
 * so peeking at it cannot race with civetweb. */
/* Internal to src/server. */
#ifndef OB_SERVER_PEER_H
#define OB_SERVER_PEER_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The socket connected to remote_addr (numeric IPv4 or IPv6 text, as civetweb
 * gives it) : remote_port from local_port, or -1 when none is found (then the
 * caller falls back to noticing failed writes). Not owned: never close it. */
int ob_peer_find_socket(const char *remote_addr, int remote_port, int local_port);

/* True when the peer has closed or reset the connection (EOF or an error on
 * read; bytes waiting to be read, e.g. a pipelined request, mean alive).
 * Never blocks. A client that half-closes its side after sending the request
 * counts as gone, as with llama.cpp's server: HTTP clients do not do that. */
bool ob_peer_gone(int fd);

#ifdef __cplusplus
}
#endif
#endif
