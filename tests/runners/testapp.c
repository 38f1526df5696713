/*
 * The app inside the Docker runner's test image: built with `gcc -static` and imported as the
 * only file of a `FROM scratch`-like image (see docker.rs in this folder).
 *
 *   testapp            report what it sees into /out (if mounted), print "testapp ready", then
 *                      wait for SIGTERM and exit 0
 *   testapp exit N     print a line and exit with status N at once
 *   testapp ignore-term  like the default, but ignore SIGTERM (the engine must SIGKILL it)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t terminated = 0;

static void on_term(int sig) {
    (void)sig;
    terminated = 1;
}

static int exists(const char *path) {
    struct stat st;
    return path != NULL && stat(path, &st) == 0;
}

static void report(void) {
    struct stat st;
    if (stat("/out", &st) != 0) {
        return;
    }
    FILE *out = fopen("/out/report.tmp", "w");
    if (out == NULL) {
        return;
    }
    for (char **e = environ; *e != NULL; e++) {
        fprintf(out, "env:%s\n", *e);
    }
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    char marker[4096];
    snprintf(marker, sizeof marker, "%s/marker", runtime ? runtime : "/nonexistent");
    fprintf(out, "runtime-dir-visible=%d\n", exists(marker));
    const char *pulse = getenv("PULSE_SERVER");
    if (pulse != NULL && strncmp(pulse, "unix:", 5) == 0) {
        pulse += 5;
    }
    fprintf(out, "pulse-socket-visible=%d\n", exists(pulse));
    if (exists("/ro")) {
        int fd = open("/ro/probe", O_CREAT | O_WRONLY, 0644);
        fprintf(out, "ro-write=%s\n", fd >= 0 ? "ok" : (errno == EROFS ? "EROFS" : strerror(errno)));
        if (fd >= 0) {
            close(fd);
        }
    }
    fclose(out);
    /* Atomic: the test polls for report.txt and must never read half of it. */
    rename("/out/report.tmp", "/out/report.txt");
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "exit") == 0) {
        printf("testapp exiting with %s\n", argv[2]);
        return atoi(argv[2]);
    }
    if (argc >= 2 && strcmp(argv[1], "ignore-term") == 0) {
        signal(SIGTERM, SIG_IGN);
    } else {
        signal(SIGTERM, on_term);
    }
    report();
    printf("testapp ready\n");
    fprintf(stderr, "testapp stderr line\n");
    fflush(stdout);
    fflush(stderr);
    while (!terminated) {
        pause();
    }
    printf("testapp got SIGTERM\n");
    return 0;
}
