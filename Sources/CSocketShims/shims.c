#define _GNU_SOURCE
#include "CSocketShims.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/un.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

size_t endpointmux_cmsg_space(size_t length) { return CMSG_SPACE(length); }
size_t endpointmux_cmsg_len(size_t length) { return CMSG_LEN(length); }
struct cmsghdr *endpointmux_cmsg_firsthdr(struct msghdr *msg) { return CMSG_FIRSTHDR(msg); }
struct cmsghdr *endpointmux_cmsg_nxthdr(struct msghdr *msg, struct cmsghdr *cmsg) { return CMSG_NXTHDR(msg, cmsg); }
unsigned char *endpointmux_cmsg_data(struct cmsghdr *cmsg) { return CMSG_DATA(cmsg); }
size_t endpointmux_cmsg_data_length(const struct cmsghdr *cmsg) {
    size_t header = CMSG_LEN(0);
    return cmsg->cmsg_len > header ? (size_t)cmsg->cmsg_len - header : 0;
}

int endpointmux_peer_pid(int fd, pid_t *pid) {
#if defined(__linux__)
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    return 0;
#elif defined(__APPLE__)
    socklen_t len = sizeof(*pid);
    return getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, pid, &len);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int endpointmux_peer_uid(int fd, uid_t *uid) {
#if defined(__linux__)
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
#elif defined(__APPLE__)
    gid_t gid;
    return getpeereid(fd, uid, &gid);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int endpointmux_accept_cloexec(int fd, struct sockaddr *address, socklen_t *length) {
#if defined(__linux__)
    return accept4(fd, address, length, SOCK_CLOEXEC);
#else
    int accepted = accept(fd, address, length);
    if (accepted >= 0) fcntl(accepted, F_SETFD, FD_CLOEXEC);
    return accepted;
#endif
}

int endpointmux_memfd_create(const char *name) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
    return memfd_create(name, MFD_CLOEXEC);
#else
    (void)name;
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/eventfd.h>

int endpointmux_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int endpointmux_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = 0;
    event.data.fd = fd;
    return epoll_ctl(epfd, op, fd, &event);
}

int endpointmux_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout) {
    struct epoll_event ready[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, ready, max, timeout);
    for (int i = 0; i < n; i++) {
        fds[i] = ready[i].data.fd;
        events[i] = ready[i].events;
    }
    return n;
}

int endpointmux_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
#else
int endpointmux_epoll_create(void) { errno = ENOSYS; return -1; }
int endpointmux_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    (void)epfd; (void)op; (void)fd; (void)events; errno = ENOSYS; return -1;
}
int endpointmux_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout) {
    (void)epfd; (void)fds; (void)events; (void)max; (void)timeout; errno = ENOSYS; return -1;
}
int endpointmux_eventfd(void) { errno = ENOSYS; return -1; }
#endif

#include <pthread.h>
#include <stdlib.h>

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok = 0;
static __thread void *scratch_buffer = NULL;

static void scratch_make_key(void) { scratch_key_ok = pthread_key_create(&scratch_key, free) == 0; }

void *endpointmux_thread_scratch(void) {
    if (scratch_buffer != NULL) return scratch_buffer;
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_key_ok) return NULL;
    void *buffer = malloc(ENDPOINTMUX_SCRATCH_BYTES);
    if (buffer == NULL) return NULL;
    if (pthread_setspecific(scratch_key, buffer) != 0) { free(buffer); return NULL; }
    scratch_buffer = buffer;
    return buffer;
}

#if defined(__GLIBC__)
#include <malloc.h>
int endpointmux_keep_large_allocations(size_t bytes, size_t keep) {
    if (bytes > (size_t)0x7fffffff || keep > (size_t)0x7fffffff) return -1;
    if (mallopt(M_MMAP_THRESHOLD, (int)bytes) != 1) return -1;
    return mallopt(M_TRIM_THRESHOLD, (int)keep) == 1 ? 0 : -1;
}
#else
int endpointmux_keep_large_allocations(size_t bytes, size_t keep) { (void)bytes; (void)keep; return -1; }
#endif
