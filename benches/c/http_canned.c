/*
 * The HTTP client's ceiling for the load benchmark (benches/load.rs), peer
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
 *   cc -O2 -o http_canned benches/c/http_canned.c && ./http_canned --addr 127.0.0.1:0
 *
 * Prints "http_canned listening on ADDR" on stderr, like the other servers.
 */
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

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                               "Server: c\r\n"
                               "Date: Sat, 21 Nov 2026 00:00:00 GMT\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";
#define RESPONSE_LEN (sizeof RESPONSE - 1)

/* One connection. Invariants: off <= len <= cap (what the socket refused,
 * not yet sent); 0 <= matched < 4 (how much of "\r\n\r\n" the bytes read so
 * far end with, counted since the last complete terminator). */
struct conn {
    char *pending;
    size_t off, len, cap;
    unsigned matched;
};

static struct conn *conns; /* indexed by fd */
static int max_fds;
static char in[BUF_SIZE];
static char *out;      /* responses of one read; grown as needed */
static size_t out_cap; /* out holds out_cap bytes */

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
static int serve(int fd, int rdhup) {
    struct conn *c = &conns[fd];
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
        size_t heads = count_heads(in, (size_t)n, &c->matched);
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
        if (c->len > c->off) {
            keep(c, out, bytes); /* keep order: behind what waits */
        } else {
            ssize_t w = send(fd, out, bytes, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN && errno != EINTR) return -1;
                w = 0;
            }
            if ((size_t)w < bytes) keep(c, out + w, bytes - (size_t)w);
        }
        if (drained) return 0;
    }
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1:8080";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) addr = argv[++i];
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "http_canned: bad --addr %s\n", addr);
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "http_canned: bad --addr %s\n", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    max_fds = (int)sysconf(_SC_OPEN_MAX);
    conns = calloc((size_t)max_fds, sizeof *conns);
    if (!conns) { perror("calloc"); return 1; }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
        perror("http_canned: bind/listen");
        return 1;
    }
    socklen_t salen = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    char shown[64];
    inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
    fprintf(stderr, "http_canned listening on %s:%d\n", shown, ntohs(sa.sin_port));

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
                    if (fd < 0) break; /* EAGAIN: done (see epoll_echo.c on EMFILE) */
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
            }
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
                if (serve(fd, (e & (EPOLLRDHUP | EPOLLHUP)) != 0) < 0) close_conn(fd);
            }
        }
    }
}
