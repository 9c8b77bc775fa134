/* iut.c - the IUT's process: start it with its environment, feed its
 * standard input, capture its output in a file, stop it, and tell how it
 * ended. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

extern char **environ;

int64_t conf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t conf_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void conf_iut_init(conf_iut *iut)
{
    memset(iut, 0, sizeof *iut);
    iut->stdin_fd = -1;
}

/* Is the variable NAME=... of entry e overridden by the run? */
static int overridden(const char *e, const conf_opts *o)
{
    static const char *const ours[] = {"SOCKET_PATH=", "DCS_TIME_SCALE=", "FAKETIME=", NULL};
    size_t i;
    for (i = 0; ours[i]; i++)
        if (strncmp(e, ours[i], strlen(ours[i])) == 0)
            return 1;
    if (o->time_mode == CONF_TIME_FAKETIME && strncmp(e, "LD_PRELOAD=", 11) == 0)
        return 1;
    for (i = 0; i < o->n_env; i++) {
        const char *eq = strchr(o->env[i], '=');
        size_t n = eq ? (size_t)(eq - o->env[i]) + 1 : strlen(o->env[i]);
        if (strncmp(e, o->env[i], n) == 0)
            return 1;
    }
    return 0;
}

/* v as the shortest plain decimal that reads back as v ("0.1", "0.00001"),
 * as spec 12.2 asks of DCS_TIME_SCALE. */
static void decimal(char *out, size_t n, double v)
{
    int prec;
    for (prec = 0; prec <= 30; prec++) {
        snprintf(out, n, "%.*f", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
    snprintf(out, n, "%.17g", v);
}

static char **build_env(const conf_opts *o, const char *socket, char *why, size_t whylen)
{
    size_t n = 0, k = 0, i;
    char **env;
    char buf[96], num[64];
    while (environ[n])
        n++;
    if (!(env = calloc(n + o->n_env + 8, sizeof *env))) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++)
        if (!overridden(environ[i], o))
            env[k++] = strdup(environ[i]);
    for (i = 0; i < o->n_env; i++)
        env[k++] = strdup(o->env[i]);
    if (asprintf(&env[k++], "SOCKET_PATH=%s", socket) < 0)
        env[k - 1] = NULL;
    if (o->time_mode == CONF_TIME_SCALE) {
        decimal(num, sizeof num, o->scale);
        snprintf(buf, sizeof buf, "DCS_TIME_SCALE=%s", num);
        env[k++] = strdup(buf);
    } else if (o->time_mode == CONF_TIME_FAKETIME) {
        decimal(num, sizeof num, o->faketime);
        snprintf(buf, sizeof buf, "FAKETIME=+0 x%s", num);
        env[k++] = strdup(buf);
        if (asprintf(&env[k++], "LD_PRELOAD=%s", o->faketime_lib) < 0)
            env[k - 1] = NULL;
    }
    for (i = 0; i < k; i++)
        if (!env[i]) {
            snprintf(why, whylen, "out of memory");
            for (i = 0; i < k; i++)
                free(env[i]);
            free(env);
            return NULL;
        }
    return env;
}

static void free_env(char **env)
{
    size_t i;
    for (i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

int conf_iut_start(conf_iut *iut, const conf_opts *o, const char *socket, char *const *extra,
                   size_t n_extra, char *why, size_t whylen)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    char **env, **argv;
    size_t n = 0, i;
    int in[2], logfd, rc;
    while (o->argv[n])
        n++;
    if (!(argv = calloc(n + n_extra + 1, sizeof *argv))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++)
        argv[i] = o->argv[i];
    for (i = 0; i < n_extra; i++)
        argv[n + i] = extra[i];
    if (!(env = build_env(o, socket, why, whylen))) {
        free(argv);
        return -1;
    }
    logfd = open(iut->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0 || pipe2(in, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "cannot set up the IUT's output %s: %s", iut->log_path, strerror(errno));
        if (logfd >= 0)
            close(logfd);
        free_env(env);
        free(argv);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, logfd, 1);
    posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&at, 0);
    {
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setsigmask(&at, &none);
    }
    rc = posix_spawnp(&iut->pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(logfd);
    free_env(env);
    free(argv);
    if (rc != 0) {
        close(in[1]);
        iut->pid = 0;
        snprintf(why, whylen, "cannot start the IUT %s: %s", o->argv[0], strerror(rc));
        return -1;
    }
    iut->stdin_fd = in[1];
    fcntl(iut->stdin_fd, F_SETFL, fcntl(iut->stdin_fd, F_GETFL) | O_NONBLOCK);
    iut->exited = 0;
    iut->status = 0;
    iut->stopping = 0;
    iut->started_us = conf_now_us();
    return 0;
}

int conf_iut_check(conf_iut *iut)
{
    int st;
    pid_t p;
    if (iut->exited)
        return 1;
    if (iut->pid <= 0)
        return 0;
    p = waitpid(iut->pid, &st, WNOHANG);
    if (p == iut->pid) {
        iut->exited = 1;
        iut->status = st;
        /* its children (same process group) go with it */
        kill(-iut->pid, SIGKILL);
        if (iut->stdin_fd >= 0)
            close(iut->stdin_fd);
        iut->stdin_fd = -1;
        return 1;
    }
    return 0;
}

static void wait_until(conf_iut *iut, int64_t deadline_us)
{
    while (!conf_iut_check(iut) && conf_now_us() < deadline_us) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void conf_iut_stop(conf_iut *iut, int64_t grace_us)
{
    if (iut->pid <= 0 || conf_iut_check(iut))
        return;
    iut->stopping = 1;
    kill(iut->pid, SIGTERM);
    wait_until(iut, conf_now_us() + grace_us);
    if (!iut->exited)
        conf_iut_kill(iut);
}

void conf_iut_kill(conf_iut *iut)
{
    if (iut->pid <= 0 || conf_iut_check(iut))
        return;
    iut->stopping = 1;
    kill(-iut->pid, SIGKILL);
    kill(iut->pid, SIGKILL);
    wait_until(iut, conf_now_us() + 10 * 1000000);
}

void conf_iut_describe(const conf_iut *iut, char *out, size_t n)
{
    if (!iut->exited)
        snprintf(out, n, "running (pid %ld)", (long)iut->pid);
    else if (WIFEXITED(iut->status))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(iut->status));
    else if (WIFSIGNALED(iut->status))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(iut->status), strsignal(WTERMSIG(iut->status)));
    else
        snprintf(out, n, "ended (status 0x%x)", (unsigned)iut->status);
}

int conf_iut_crashed(const conf_iut *iut)
{
    int sig;
    if (!iut->exited || !WIFSIGNALED(iut->status))
        return 0;
    sig = WTERMSIG(iut->status);
    return !(iut->stopping && (sig == SIGTERM || sig == SIGKILL || sig == SIGINT));
}
