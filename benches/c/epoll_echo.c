/*
 * A plain C epoll echo server: the floor the load benchmark
 * (benches/load.rs) measures the reactor against. The bench compiles it with
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
 *   cc -O2 -o epoll_echo benches/c/epoll_echo.c && ./epoll_echo --addr 127.0.0.1:0
 *
 * Prints "epoll_echo listening on ADDR" on stderr, like the other servers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define HIGH_WATER (1024 * 1024)
#define LISTEN_TAG ((uint64_t)-1)

/* What the socket refused; the invariant is off <= len <= cap. */
struct conn {
    char *pending;
    size_t off, len, cap;
    int paused; /* reading stopped by backpressure; resumed after a flush */
};

static struct conn *conns; /* indexed by fd */
static int max_fds;
static char buf[BUF_SIZE];

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

/* Queues bytes the socket refused. */
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

/* Echoes until EAGAIN, a short read, or backpressure. Returns -1 to close. */
static int echo(int fd, int rdhup) {
    struct conn *c = &conns[fd];
    for (;;) {
        if (c->len - c->off >= HIGH_WATER) { c->paused = 1; return 0; }
        ssize_t n = read(fd, buf, BUF_SIZE);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        if (c->len > c->off) {
            keep(c, buf, (size_t)n); /* keep order: behind what waits */
        } else {
            ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN && errno != EINTR) return -1;
                w = 0;
            }
            if (w < n) keep(c, buf + w, (size_t)(n - w));
        }
        if (n < BUF_SIZE && !rdhup) return 0;
    }
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1:65432";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) addr = argv[++i];
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "epoll_echo: bad --addr %s\n", addr);
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "epoll_echo: bad --addr %s\n", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    max_fds = (int)sysconf(_SC_OPEN_MAX);
    conns = calloc((size_t)max_fds, sizeof *conns);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
        perror("epoll_echo: bind/listen");
        return 1;
    }
    socklen_t salen = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    char shown[64];
    inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
    fprintf(stderr, "epoll_echo listening on %s:%d\n", shown, ntohs(sa.sin_port));

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
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) {
                        /* EAGAIN: done. EMFILE: with edge triggering no new
                         * event comes for the backlog; good enough for a
                         * benchmark peer run below the descriptor limit. */
                        break;
                    }
                    if (fd >= max_fds) { close(fd); continue; }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {
                        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                        .data.u64 = (uint64_t)fd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            int fd = (int)events[i].data.u64;
            uint32_t e = events[i].events;
            struct conn *c = &conns[fd];
            if (e & EPOLLERR) { close_conn(fd); continue; }
            if ((e & EPOLLOUT) && c->len > c->off) {
                if (flush(fd) < 0) { close_conn(fd); continue; }
                if (c->paused && c->len - c->off < HIGH_WATER / 4) {
                    c->paused = 0;
                    e |= EPOLLIN; /* edge already spent: read now */
                }
            }
            if ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !c->paused) {
                if (echo(fd, (e & (EPOLLRDHUP | EPOLLHUP)) != 0) < 0) close_conn(fd);
            }
        }
    }
}
