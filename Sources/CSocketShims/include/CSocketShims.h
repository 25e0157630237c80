// Socket helpers whose C macros do not import into Swift (CMSG_*), kept tiny and
// portable across glibc, musl and Darwin, the way SwiftNIO's own C shims do it.
#ifndef ENDPOINTMUX_CSOCKETSHIMS_H
#define ENDPOINTMUX_CSOCKETSHIMS_H
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

/// CMSG_SPACE(length): bytes a control message with `length` data bytes occupies.
size_t endpointmux_cmsg_space(size_t length);
/// CMSG_LEN(length): the cmsg_len value for `length` data bytes.
size_t endpointmux_cmsg_len(size_t length);
/// CMSG_FIRSTHDR(msg), or NULL.
struct cmsghdr *endpointmux_cmsg_firsthdr(struct msghdr *msg);
/// CMSG_NXTHDR(msg, cmsg), or NULL.
struct cmsghdr *endpointmux_cmsg_nxthdr(struct msghdr *msg, struct cmsghdr *cmsg);
/// CMSG_DATA(cmsg).
unsigned char *endpointmux_cmsg_data(struct cmsghdr *cmsg);
/// Bytes of data in `cmsg` (cmsg_len minus the header, never negative).
size_t endpointmux_cmsg_data_length(const struct cmsghdr *cmsg);

/// Reads the peer's pid through SO_PEERCRED (Linux) or LOCAL_PEERPID (Darwin).
/// Returns 0 on success and stores the pid, or -1 with errno set.
int endpointmux_peer_pid(int fd, pid_t *pid);

/// Reads the peer's uid through SO_PEERCRED (Linux) or getpeereid (Darwin).
/// Returns 0 on success and stores the uid, or -1 with errno set.
int endpointmux_peer_uid(int fd, uid_t *uid);

/// accept4(fd, address, length, SOCK_CLOEXEC) on Linux; accept + FD_CLOEXEC elsewhere.
int endpointmux_accept_cloexec(int fd, struct sockaddr *address, socklen_t *length);

/// memfd_create(name, MFD_CLOEXEC) where available, else -1 with errno ENOSYS.
int endpointmux_memfd_create(const char *name);
#include <stdint.h>
/// epoll_create1(EPOLL_CLOEXEC) (Linux; elsewhere -1, ENOSYS).
int endpointmux_epoll_create(void);
/// epoll_ctl with `fd` as the event's data. `op`: 1 add, 2 delete, 3 modify.
int endpointmux_epoll_ctl(int epfd, int op, int fd, uint32_t events);
/// epoll_wait into parallel arrays of fds and event masks (at most 256).
int endpointmux_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout);
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int endpointmux_eventfd(void);

/// Bytes of the calling thread's receive scratch buffer.
#define ENDPOINTMUX_SCRATCH_BYTES 65536
/// The calling thread's receive scratch buffer (ENDPOINTMUX_SCRATCH_BYTES bytes), allocated
/// on first use and freed when the thread exits; NULL if it cannot be allocated. Connections
/// read into it when they hold no input, so an idle connection owns no receive storage and
/// a busy one does not allocate and free a chunk per read.
void *endpointmux_thread_scratch(void);

/// glibc: serve allocations up to `bytes` from the heap instead of fresh mmaps, and keep up
/// to `keep` bytes of freed heap instead of returning them to the kernel (mallopt
/// M_MMAP_THRESHOLD / M_TRIM_THRESHOLD). Returns 0 on success; -1 elsewhere.
int endpointmux_keep_large_allocations(size_t bytes, size_t keep);
#endif
