// Child processes for mux-load that die with it: fork + execv with PR_SET_PDEATHSIG.
#define _GNU_SOURCE
#include "CEchoServer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

pid_t cecho_spawn(const char *path, char *const argv[], int log_fd) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;  // parent (or -1)
    // Child: only async-signal-safe calls until execv.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent already died
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) { dup2(null_fd, 0); if (null_fd > 2) close(null_fd); }
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(path, argv);
    _exit(127);
}

#include <sched.h>
#include <sys/resource.h>

int cecho_raise_nofile(unsigned long want, unsigned long *soft_out, unsigned long *hard_out) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if (limit.rlim_cur < want) {
        struct rlimit raised = {.rlim_cur = want, .rlim_max = limit.rlim_max < want ? want : limit.rlim_max};
        // Raising the hard limit needs CAP_SYS_RESOURCE; without it, go as high as the hard limit.
        if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
            raised.rlim_max = limit.rlim_max;
            raised.rlim_cur = limit.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &raised);
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    *soft_out = (unsigned long)limit.rlim_cur;
    *hard_out = (unsigned long)limit.rlim_max;
    return 0;
}

int cecho_set_affinity(const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity(0, sizeof(set), &set);
}
