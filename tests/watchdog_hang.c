/* watchdog_hang — a program that hangs on purpose, for tests/watchdog_test.py:
 * tests/watchdog must print the stack of each of its threads (and of its
 * child process), then kill them all.  The functions it hangs in have names
 * that the test looks for in the backtraces.
 *
 * usage: watchdog_hang threads   two threads, each blocked in pause()
 *        watchdog_hang fork      the same, plus a child process that hangs
 * Prints "ready PID..." (its own pid, then the child's) once everything
 * hangs. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* noinline, and a call inside the loop: each function keeps its own frame. */
__attribute__((noinline)) void hang_in_worker_thread(void)
{
	for (;;)
		pause();
}

__attribute__((noinline)) void hang_in_main_thread(void)
{
	for (;;)
		pause();
}

__attribute__((noinline)) void hang_in_child_process(void)
{
	for (;;)
		pause();
}

static void *worker(void *arg)
{
	(void)arg;
	hang_in_worker_thread();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	pid_t child = 0;

	if (argc != 2 || (strcmp(argv[1], "threads") != 0 && strcmp(argv[1], "fork") != 0)) {
		fprintf(stderr, "usage: watchdog_hang threads|fork\n");
		return 2;
	}
	if (strcmp(argv[1], "fork") == 0) {
		child = fork();
		if (child < 0) {
			perror("watchdog_hang: fork");
			return 1;
		}
		if (child == 0)
			hang_in_child_process();
	}
	if (pthread_create(&t, NULL, worker, NULL) != 0) {
		fprintf(stderr, "watchdog_hang: pthread_create failed\n");
		return 1;
	}
	if (child > 0)
		printf("ready %ld %ld\n", (long)getpid(), (long)child);
	else
		printf("ready %ld\n", (long)getpid());
	fflush(stdout);
	hang_in_main_thread();
	return 0;
}
