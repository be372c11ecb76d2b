/*
 * A plain C epoll echo server: the floor the load benchmark
 * (bench/load/) measures the reactor against. The bench compiles it with
 * `cc -O2` at run time; nothing else builds it.
 *
 * What a careful C programmer would write, no more: one thread, one epoll
 * instance, every socket non-blocking and registered once, edge-triggered,
 * for EPOLLIN | EPOLLOUT | EPOLLRDHUP (no epoll_ctl per message). One shared
 * 64 KiB read buffer; a reply is written straight away, and only what the
 * socket refuses is kept per connection until EPOLLOUT. Past 1 MiB kept, the
 * connection is not read until it drains (backpressure). A short read means
 * the socket was drained (Linux), unless the peer's FIN was announced: then
 * read on until 0. TCP_NODELAY on every accepted socket.
 *
 *   cc -O2 -o epoll_echo bench/c/epoll_echo.c && ./epoll_echo --addr 127.0.0.1:0
 *
 * Prints "epoll_echo listening on ADDR" on stderr, like the other servers.
 * The socket plumbing (the queue of refused bytes, --addr, the epoll loop)
 * is common.h's, shared with http_canned.c; what is here is the echo.
 */

#define HIGH_WATER (1024 * 1024)

/* This program's part of a connection (common.h holds the rest). */
struct conn_state {
    int paused; /* reading stopped by backpressure; resumed after a flush */
};

#include "common.h"

/* Echoes until EAGAIN, a short read, or backpressure. Returns -1 to close. */
static int echo(int fd, struct conn *c, int rdhup) {
    for (;;) {
        if (c->len - c->off >= HIGH_WATER) { c->state.paused = 1; return 0; }
        ssize_t n = read(fd, in, BUF_SIZE);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        if (send_or_keep(fd, c, in, (size_t)n) < 0) return -1;
        if (n < BUF_SIZE && !rdhup) return 0;
    }
}

/* What waits has just been flushed on EPOLLOUT, if the event has it: a
 * paused connection (which always has something waiting, so the flush ran)
 * resumes once below a quarter of HIGH_WATER. */
static int on_ready(int fd, struct conn *c, uint32_t e) {
    if ((e & EPOLLOUT) && c->state.paused && c->len - c->off < HIGH_WATER / 4) {
        c->state.paused = 0;
        e |= EPOLLIN; /* edge already spent: read now */
    }
    if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !c->state.paused) {
        return echo(fd, c, (e & (EPOLLRDHUP | EPOLLHUP)) != 0);
    }
    return 0;
}

int main(int argc, char **argv) {
    return serve_forever(listen_on("epoll_echo", "127.0.0.1:65432", argc, argv));
}
