// The baseline for mux-load: the plainest fair epoll echo server over unix stream sockets.
// One thread, level-triggered epoll, non-blocking sockets. Per readable event it reads as
// much as one read() gives, answers every complete message in what it holds with one
// write() straight from the receive buffer (no copy), and keeps what a full socket did not
// take; while output is pending it stops reading (backpressure) and waits for EPOLLOUT.
// Frames are echoed only once complete (a 16 MiB frame is buffered whole, as a frame
// server must), so the byte cost is the floor a frame-parsing server can reach.
#define _GNU_SOURCE
#include "CEchoServer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CECHO_CHUNK (64 * 1024)
#define CECHO_MAX_FRAME_BODY (64u * 1024u * 1024u)

struct cecho_conn {
    int fd;
    unsigned char *in;      // received, not yet answered
    size_t in_len, in_cap;
    unsigned char *out;     // answered, not yet written
    size_t out_off, out_len, out_cap;
};

static int cecho_reserve(unsigned char **buffer, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    size_t next = *cap ? *cap : CECHO_CHUNK;
    while (next < need) next *= 2;
    unsigned char *grown = realloc(*buffer, next);
    if (!grown) return -1;
    *buffer = grown;
    *cap = next;
    return 0;
}

/// Length of the prefix of `in` made of complete messages; -1 for a malformed frame.
static long cecho_complete_prefix(const unsigned char *in, size_t len, int mode, size_t *want) {
    *want = 0;
    if (mode == CECHO_MODE_LINES) {
        const unsigned char *last = memrchr(in, '\n', len);
        return last ? (long)(last - in + 1) : 0;
    }
    size_t at = 0;
    while (len - at >= 5) {
        if (in[at] != 0x01) return -1;
        uint32_t body = (uint32_t)in[at + 1] | (uint32_t)in[at + 2] << 8 | (uint32_t)in[at + 3] << 16 | (uint32_t)in[at + 4] << 24;
        if (body > CECHO_MAX_FRAME_BODY) return -1;
        if (len - at < 5 + (size_t)body) { *want = at + 5 + body; break; }
        at += 5 + body;
    }
    return (long)at;
}

static void cecho_close(int epoll_fd, struct cecho_conn *conn) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
    close(conn->fd);
    free(conn->in);
    free(conn->out);
    free(conn);
}

static int cecho_set_events(int epoll_fd, struct cecho_conn *conn, uint32_t events) {
    struct epoll_event event = {.events = events, .data.ptr = conn};
    return epoll_ctl(epoll_fd, EPOLL_CTL_MOD, conn->fd, &event);
}

/// Writes pending output; 1 when all of it is out, 0 when the socket is full, -1 on error.
static int cecho_flush(struct cecho_conn *conn) {
    while (conn->out_off < conn->out_len) {
        ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off, MSG_NOSIGNAL);
        if (n > 0) { conn->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
    conn->out_off = conn->out_len = 0;
    return 1;
}

/// Answers every complete message held in `in`; 1 when all written, 0 when output is
/// pending, -1 on error.
static int cecho_answer(struct cecho_conn *conn, int mode) {
    size_t want;
    long prefix = cecho_complete_prefix(conn->in, conn->in_len, mode, &want);
    if (prefix < 0) return -1;
    size_t done = 0;
    while (done < (size_t)prefix) {
        ssize_t n = send(conn->fd, conn->in + done, (size_t)prefix - done, MSG_NOSIGNAL);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (done < (size_t)prefix) {
        size_t rest = (size_t)prefix - done;
        if (cecho_reserve(&conn->out, &conn->out_cap, rest) != 0) return -1;
        memcpy(conn->out, conn->in + done, rest);
        conn->out_off = 0;
        conn->out_len = rest;
    }
    if (prefix > 0) {
        memmove(conn->in, conn->in + prefix, conn->in_len - (size_t)prefix);
        conn->in_len -= (size_t)prefix;
    }
    return conn->out_len == 0 ? 1 : 0;
}

/// Handles one readable event; -1 when the connection is over.
static int cecho_readable(struct cecho_conn *conn, int mode) {
    // Size the read from a frame header when a big frame is arriving (one buffer, no regrowth).
    size_t want = 0;
    if (mode == CECHO_MODE_FRAMES) (void)cecho_complete_prefix(conn->in, conn->in_len, mode, &want);
    size_t need = conn->in_len + CECHO_CHUNK;
    if (want > need) need = want;
    if (cecho_reserve(&conn->in, &conn->in_cap, need) != 0) return -1;
    ssize_t n = recv(conn->fd, conn->in + conn->in_len, conn->in_cap - conn->in_len, 0);
    if (n == 0) return -1;
    if (n < 0) return (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    conn->in_len += (size_t)n;
    return cecho_answer(conn, mode) < 0 ? -1 : 0;
}

int cecho_serve(const char *path, int mode) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(address.sun_path, path);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) return -1;
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0) return -1;
    if (listen(listener, 4096) != 0) return -1;
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) return -1;
    struct epoll_event listen_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &listen_event) != 0) return -1;
    struct epoll_event events[256];
    for (;;) {
        int ready = epoll_wait(epoll_fd, events, 256, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        for (int i = 0; i < ready; i++) {
            struct cecho_conn *conn = events[i].data.ptr;
            if (conn == NULL) {
                for (int accepted = 0; accepted < 256; accepted++) {
                    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;  // EAGAIN, or EMFILE: epoll wakes us again
                    struct cecho_conn *fresh = calloc(1, sizeof(*fresh));
                    if (!fresh) { close(fd); continue; }
                    fresh->fd = fd;
                    struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = fresh};
                    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) { close(fd); free(fresh); }
                }
                continue;
            }
            uint32_t revents = events[i].events;
            int alive = 0;
            if (conn->out_len > 0) {
                // Waiting to write: flush, then answer what was held back, then read again.
                int flushed = (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? cecho_flush(conn) : 0;
                if (flushed == 1) flushed = cecho_answer(conn, mode);
                if (flushed == 1) alive = cecho_set_events(epoll_fd, conn, EPOLLIN | EPOLLRDHUP);
                else alive = flushed;
            } else if (revents & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
                alive = cecho_readable(conn, mode);
                if (alive == 0 && conn->out_len > 0) alive = cecho_set_events(epoll_fd, conn, EPOLLOUT);
            }
            if (alive < 0) cecho_close(epoll_fd, conn);
        }
    }
}
