/*
 * proc.h - child processes that die with their parent: what td-kafka
 * --apache runs its brokers as, and the test harness everything it starts.
 */
#ifndef TD_PROC_H
#define TD_PROC_H

#include <sys/types.h>

/*
 * fork + execvp(argv[0], argv) with stdin from /dev/null and stdout and
 * stderr appended to log. The child gets SIGKILL when this thread's process
 * dies (PR_SET_PDEATHSIG), so a crash or a failed test leaves nothing
 * behind. Returns the child's pid, or -1 if fork failed.
 */
pid_t td_proc_spawn(char *const argv[], const char *log);

/* waitpid with a deadline, polled every 50 ms: the child's waitpid status,
 * or -1 on timeout (or if pid is not a child). */
int td_proc_wait(pid_t pid, int timeout_ms);
/* A free TCP port on 127.0.0.1 (-1 if none could be had). */
int td_proc_free_port(void);

#endif
