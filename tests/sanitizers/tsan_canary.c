/*
 * tsan_canary.c — a planted data race: two threads increment one plain
 * counter.  Built only in the ThreadSanitizer tree, where tests/sanitizers/
 * tsan_canary.sh checks that TSan reports it, so "0 reports" from the other
 * suites means TSan looked, not that it was off.
 */
#include <pthread.h>
#include <stdio.h>

typedef struct shared {
	long counter; /* deliberately unsynchronised */
} shared;

static void *bump(void *arg)
{
	shared *s = arg;
	for (int i = 0; i < 100000; i++)
		s->counter++;
	return NULL;
}

int main(void)
{
	shared s = {0};
	pthread_t a, b;
	if (pthread_create(&a, NULL, bump, &s) || pthread_create(&b, NULL, bump, &s))
		return 2;
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("counter %ld\n", s.counter);
	return 0;
}
