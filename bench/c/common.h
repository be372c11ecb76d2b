/*
 * The socket plumbing the two C peers of the load benchmark (bench/load/)
 * share: epoll_echo.c ("c-epoll") and http_canned.c ("c-http"). They share
 * it so that they differ only in what they do with the bytes they read; a
 * difference between their rows is then that, not a difference in plumbing.
 * Each program is one translation unit (`cc -O2 -o OUT bench/c/NAME.c`,
 * which finds this header next to the source), so everything here is static.
 *
 * What this header owns:
 *   - the per-connection queue of bytes the socket refused (`struct conn`'s
 *     pending/off/len/cap, `keep`, `flush`, `send_or_keep`) and `close_conn`;
 *   - `--addr HOST:PORT` parsing and the listening socket (`listen_on`);
 *   - the epoll loop (`serve_forever`): one thread, one epoll instance,
 *     every socket non-blocking and registered once, edge-triggered, for
 *     EPOLLIN | EPOLLOUT | EPOLLRDHUP (no epoll_ctl per message), accepting
 *     with TCP_NODELAY, closing on EPOLLERR and flushing on EPOLLOUT;
 *   - the one 64 KiB read buffer `in`.
 *
 * What the including program supplies:
 *   - before the #include, `struct conn_state`: its own per-connection
 *     fields, all zero for a new connection (conns[] starts zeroed and
 *     close_conn zeroes it again);
 *   - after it, `on_ready(fd, c, events)`: called for every event on a
 *     connection once EPOLLERR and EPOLLOUT have been handled here; it reads
 *     and answers, returning -1 to close the connection.
 */
#ifndef BENCH_C_COMMON_H
#define BENCH_C_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define LISTEN_TAG ((uint64_t)-1)

/* One connection. Invariants: off <= len <= cap; pending[off..len) is what
 * the socket refused, not yet sent, in order; pending holds cap bytes (NULL
 * when cap is 0). `state` is the program's own, zero when the connection
 * opens. */
struct conn {
    char *pending;
    size_t off, len, cap;
    struct conn_state state;
};

static struct conn *conns; /* indexed by fd; conns[fd] is zero unless fd is an open connection */
static int max_fds;        /* conns holds max_fds entries; larger fds are refused */
static char in[BUF_SIZE];  /* the read buffer, shared: nothing in it outlives one read */

/* The program's reaction to `events` on connection `fd` (c == &conns[fd]),
 * after EPOLLERR and EPOLLOUT are handled. Returns -1 to close. */
static int on_ready(int fd, struct conn *c, uint32_t events);

static void close_conn(int fd) {
    free(conns[fd].pending);
    memset(&conns[fd], 0, sizeof conns[fd]);
    close(fd); /* close also removes it from the epoll set */
}

/* Writes what is pending; returns -1 if the connection died. */
static int flush(int fd) {
    struct conn *c = &conns[fd];
    while (c->off < c->len) {
        ssize_t n = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 0;
}

/* Queues bytes the socket refused, behind what already waits. */
static void keep(struct conn *c, const char *data, size_t n) {
    if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n) cap *= 2;
        c->pending = realloc(c->pending, cap);
        if (!c->pending) { perror("realloc"); exit(1); }
        c->cap = cap;
    }
    memcpy(c->pending + c->len, data, n);
    c->len += n;
}

/* Sends data[0..n) straight away, unless something already waits: then, to
 * keep order, it all goes behind that. Whatever the socket refuses is kept
 * until EPOLLOUT. Returns -1 if the connection died. */
static int send_or_keep(int fd, struct conn *c, const char *data, size_t n) {
    if (c->len > c->off) {
        keep(c, data, n); /* keep order: behind what waits */
        return 0;
    }
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        w = 0;
    }
    if ((size_t)w < n) keep(c, data + w, n - (size_t)w);
    return 0;
}

/* Parses `--addr HOST:PORT` (IPv4; `default_addr` without one), ignores
 * SIGPIPE, sizes conns to the descriptor limit and returns a non-blocking
 * socket listening there, having printed "NAME listening on ADDR" on stderr
 * like the other servers. Exits 2 on a bad address, 1 on other failures. */
static int listen_on(const char *name, const char *default_addr, int argc, char **argv) {
    const char *addr = default_addr;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) addr = argv[++i];
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "%s: bad --addr %s\n", name, addr);
        exit(2);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "%s: bad --addr %s\n", name, addr);
        exit(2);
    }
    signal(SIGPIPE, SIG_IGN);
    max_fds = (int)sysconf(_SC_OPEN_MAX);
    conns = calloc((size_t)max_fds, sizeof *conns);
    if (!conns) { perror("calloc"); exit(1); }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
        fprintf(stderr, "%s: bind/listen: %s\n", name, strerror(errno));
        exit(1);
    }
    socklen_t salen = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    char shown[64];
    inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
    fprintf(stderr, "%s listening on %s:%d\n", name, shown, ntohs(sa.sin_port));
    return lfd;
}

/* Accepts every connection waiting on `lfd` into epoll set `ep`. */
static void accept_all(int ep, int lfd) {
    int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            /* EAGAIN: done. EMFILE: with edge triggering no new event comes
             * for the backlog; good enough for a benchmark peer run below
             * the descriptor limit. */
            break;
        }
        if (fd >= max_fds) { close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event cev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.u64 = (uint64_t)fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
    }
}

/* The event loop: accepts on `lfd`, closes a connection on EPOLLERR,
 * flushes what waits on EPOLLOUT, then hands the event to on_ready. Returns
 * only on failure (1). */
static int serve_forever(int lfd) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = LISTEN_TAG};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(ep, events, 1024, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 == LISTEN_TAG) {
                accept_all(ep, lfd);
                continue;
            }
            int fd = (int)events[i].data.u64;
            uint32_t e = events[i].events;
            struct conn *c = &conns[fd];
            if (e & EPOLLERR) { close_conn(fd); continue; }
            if ((e & EPOLLOUT) && c->len > c->off) {
                if (flush(fd) < 0) { close_conn(fd); continue; }
            }
            if (on_ready(fd, c, e) < 0) close_conn(fd);
        }
    }
}

#endif
