/*
 * check_run.h: what every unit test program's main() ends with. Runs the
 * suite (Check forks each test unless CK_FORK=no) and turns the count of
 * failed tests into the exit status tests/run reads.
 */
#ifndef EVR_CHECK_RUN_H
#define EVR_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
