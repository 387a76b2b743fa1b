/* stop_signal.h: a graceful stop on SIGTERM, SIGINT or SIGUSR1.
 *
 * The handler only records the signal; the training loop looks at it after every step, writes
 * a checkpoint and exits with TRAIN_EXIT_STOPPED, so a preempted or interrupted job loses at
 * most the step in flight and resumes exactly with --resume. A second SIGINT (Ctrl-C twice)
 * exits at once, as a user at a terminal expects. */
#ifndef DDPM_STOP_SIGNAL_H
#define DDPM_STOP_SIGNAL_H

/* Exit status of a run that stopped early on a signal after saving its checkpoint: 75 is
 * EX_TEMPFAIL ("try again later"), what a batch script checks before requeueing. */
#define TRAIN_EXIT_STOPPED 75

void stop_signal_install(void);
/* The signal number received so far, or 0. */
int stop_signal_pending(void);

#endif
