// SPDX-License-Identifier: Apache-2.0
#ifndef DOORMAN_CLINUX_H
#define DOORMAN_CLINUX_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (needs _GNU_SOURCE, hence the shim).
int doorman_accept(int fd);
/// accept4 that also fills in the peer's address (saves a getpeername per connection).
int doorman_accept_peer(int fd, struct sockaddr_storage *peer);

/// epoll_event is packed on x86_64; these keep Swift away from its layout.
int doorman_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int doorman_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int max, int timeout_ms);

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t doorman_monotonic_ns(void);

/// Errno as a function (errno is a macro Swift cannot always see through).
int doorman_errno(void);

/// Block SIGTERM, SIGINT, SIGHUP and ignore SIGPIPE in the calling thread (inherited by new threads).
void doorman_block_signals(void);
/// Makes glibc's malloc give memory back after bursts (fixed mmap and trim thresholds of 128 KiB):
/// after a flood of slow readers the process shrinks back instead of keeping its peak.
void doorman_return_freed_memory(void);

/// Wait for SIGTERM, SIGINT or SIGHUP; returns the signal number.
int doorman_wait_signal(void);

/// Send SIGTERM to ourselves (tests and the CLI use it to stop a server).
int doorman_raise_term(void);

/// Set TCP_NODELAY.
int doorman_set_nodelay(int fd);

#include <pthread.h>
/// Names a thread (visible in top -H and /proc).
int doorman_set_thread_name(pthread_t thread, const char *name);

/// Number of CPUs this process may run on.
int doorman_cpu_count(void);

/// Fills `buf` from the kernel's CSPRNG (getrandom(2), retried on EINTR). Returns 0, or -1.
int doorman_random_fill(void *buf, size_t len);

#endif
