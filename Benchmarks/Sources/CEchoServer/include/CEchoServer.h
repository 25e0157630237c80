#ifndef ENDPOINTMUX_CECHOSERVER_H
#define ENDPOINTMUX_CECHOSERVER_H
#include <stdint.h>
#include <sys/types.h>

/// What the baseline server answers.
enum cecho_mode {
    /// Whole v1 frames `[0x01][u32 LE length][body]`, echoed back unchanged once complete.
    CECHO_MODE_FRAMES = 0,
    /// Newline-delimited lines, each complete line echoed back unchanged.
    CECHO_MODE_LINES = 1,
};

/// Binds a unix stream socket at `path` (unlinking what is there), then runs a
/// single-threaded, level-triggered epoll echo loop forever. Returns only on a setup
/// error (-1, errno set). Meant for a process of its own (mux-load re-executes itself).
int cecho_serve(const char *path, int mode);

/// fork + execv of `path` with `argv` (NULL-terminated), stdout and stderr to `log_fd`,
/// stdin from /dev/null, and SIGKILL delivered to the child when the calling thread dies
/// (PR_SET_PDEATHSIG), so a crashed or killed benchmark never leaves servers behind.
/// Returns the pid, or -1 with errno set.
pid_t cecho_spawn(const char *path, char *const argv[], int log_fd);

/// Raises RLIMIT_NOFILE (soft, and hard when permitted) to at least `want`; inherited by
/// children spawned afterwards. Reports the limits in force. 0 on success.
int cecho_raise_nofile(unsigned long want, unsigned long *soft_out, unsigned long *hard_out);

/// Pins the calling thread (and threads and processes it creates afterwards) to `cpus`.
int cecho_set_affinity(const int *cpus, int count);

#endif
