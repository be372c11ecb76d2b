/*
 * The HTTP client's ceiling for the load benchmark (bench/load/), peer
 * "c-http". Not an HTTP server: it parses nothing, checks nothing and
 * answers every request head with the same canned response. It is the least
 * work a server can do per request, so its throughput is what the client
 * (wrk, one thread) can drive on this machine at all. If reactor-http and
 * nginx come close to it, the HTTP rows measure the client, not the servers.
 * The bench compiles it with `cc -O2` at run time; nothing else builds it.
 *
 * One thread, one epoll instance, every socket non-blocking and registered
 * once, edge-triggered, for EPOLLIN | EPOLLOUT | EPOLLRDHUP. Each connection
 * is read until EAGAIN or a short read (which means the socket is drained:
 * the same rule as epoll_echo.c and the reactor, so the floor makes no read
 * that only returns EAGAIN); a request head is anything that ends in
 * "\r\n\r\n" (the match state is kept per connection, so a terminator split
 * between two reads still counts). For every head found in one read, one
 * fixed response goes into an output buffer, and all of them leave in one
 * write. What the socket refuses is kept per connection, in order, and
 * flushed on EPOLLOUT. EOF or an error closes the connection. There is no
 * backpressure: wrk never has more than its pipeline depth in flight.
 *
 *   cc -O2 -o http_canned bench/c/http_canned.c && ./http_canned --addr 127.0.0.1:0
 *
 * Prints "http_canned listening on ADDR" on stderr, like the other servers.
 * The socket plumbing (the queue of refused bytes, --addr, the epoll loop)
 * is common.h's, shared with epoll_echo.c; what is here is the answering.
 */

/* This program's part of a connection (common.h holds the rest).
 * Invariant: 0 <= matched < 4. */
struct conn_state {
    unsigned matched; /* how much of "\r\n\r\n" the bytes read so far end
                       * with, counted since the last complete terminator */
};

#include "common.h"

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                               "Server: c\r\n"
                               "Date: Sat, 21 Nov 2026 00:00:00 GMT\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";
#define RESPONSE_LEN (sizeof RESPONSE - 1)

static char *out;      /* responses of one read; grown as needed */
static size_t out_cap; /* out holds out_cap bytes */

/* Complete "\r\n\r\n" terminators in data[0..n), carrying the partial match
 * in *matched across calls. On a mismatch the only overlap worth keeping is
 * a '\r' that may start the next terminator. */
static size_t count_heads(const char *data, size_t n, unsigned *matched) {
    static const char term[4] = {'\r', '\n', '\r', '\n'};
    size_t heads = 0;
    unsigned m = *matched;
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == term[m]) {
            if (++m == 4) {
                heads++;
                m = 0;
            }
        } else {
            m = ch == '\r';
        }
    }
    *matched = m;
    return heads;
}

/* Reads until EAGAIN or a short read, answering each read's heads in one
 * write. Returns -1 to close (EOF or error). `rdhup`: the peer's FIN was
 * announced, so read on to see EOF. */
static int serve(int fd, struct conn *c, int rdhup) {
    for (;;) {
        ssize_t n = read(fd, in, BUF_SIZE);
        if (n == 0) {
            flush(fd); /* best effort: the peer may only have shut down writing */
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        int drained = (size_t)n < BUF_SIZE && !rdhup;
        size_t heads = count_heads(in, (size_t)n, &c->state.matched);
        if (heads == 0) {
            if (drained) return 0;
            continue;
        }
        size_t bytes = heads * RESPONSE_LEN;
        if (bytes > out_cap) {
            size_t cap = out_cap ? out_cap : 64 * 1024;
            while (cap < bytes) cap *= 2;
            out = realloc(out, cap);
            if (!out) { perror("realloc"); exit(1); }
            out_cap = cap;
        }
        for (size_t i = 0; i < heads; i++) memcpy(out + i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
        if (send_or_keep(fd, c, out, bytes) < 0) return -1;
        if (drained) return 0;
    }
}

static int on_ready(int fd, struct conn *c, uint32_t e) {
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        return serve(fd, c, (e & (EPOLLRDHUP | EPOLLHUP)) != 0);
    }
    return 0;
}

int main(int argc, char **argv) {
    return serve_forever(listen_on("http_canned", "127.0.0.1:8080", argc, argv));
}
