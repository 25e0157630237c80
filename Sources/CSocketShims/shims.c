#define _GNU_SOURCE
#include "CSocketShims.h"
#include <errno.h>
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

int endpointmux_memfd_create(const char *name) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
    return memfd_create(name, MFD_CLOEXEC);
#else
    (void)name;
    errno = ENOSYS;
    return -1;
#endif
}
