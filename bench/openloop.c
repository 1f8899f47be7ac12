/* Fixed-rate (open-loop) HTTP/1.1 load for `make bench-serving`, in the manner of wrk2.
 *
 * Request i is due at start + i / RATE whatever the server does. A due request goes out on the
 * next idle keep-alive connection (round robin over CONNECTIONS, so every connection carries its
 * share); when none is idle it waits, and its latency is still timed from when it was due, so a
 * stalled server shows in the tail instead of slowing the client down (no coordinated omission).
 * One thread and one epoll loop: the client costs the machine as little as it can, which matters
 * on two cores shared with the server.
 *
 * usage: openloop HOST PORT PATH BODYFILE RATE SECONDS CONNECTIONS OUT [TOKEN]
 * OUT gets one latency per answered request (microseconds, from due to last byte), then a line
 * "sent N answered N errors N unsent N". Only 200 answers count as answered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 65536

typedef struct {
    int fd;
    int busy;     /* a request is in flight */
    double due;   /* when that request was due */
    size_t len;   /* response bytes read so far */
    char buf[BUFFER];
} conn_t;

static struct sockaddr_in address;
static char *request;
static size_t request_len;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int dial(int epoll, int index) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = (unsigned)index};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0) die("epoll_ctl");
    return fd;
}

static void redial(conn_t *c, int epoll, int index) {
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = dial(epoll, index);
    c->busy = 0;
    c->len = 0;
}

/* Whether buf holds a whole response; sets its status and whether the server closes. */
static int complete(conn_t *c, int *status, int *closes) {
    c->buf[c->len < BUFFER ? c->len : BUFFER - 1] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    long length = -1;
    *status = atoi(c->buf + 9); /* "HTTP/1.1 200 ..." */
    *closes = 0;
    for (char *line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atol(line + 17);
        if (strncasecmp(line + 2, "connection: close", 17) == 0) *closes = 1;
    }
    if (length < 0) {
        fprintf(stderr, "openloop: a response without Content-Length\n");
        exit(2);
    }
    return c->len >= head + (size_t)length;
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s HOST PORT PATH BODYFILE RATE SECONDS CONNECTIONS OUT [TOKEN]\n",
                argv[0]);
        return 2;
    }
    double rate = atof(argv[5]), seconds = atof(argv[6]);
    int n = atoi(argv[7]);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) die("address");

    FILE *file = fopen(argv[4], "rb");
    if (!file) die("body");
    static char body[1 << 20];
    size_t body_len = fread(body, 1, sizeof body, file);
    fclose(file);
    char auth[512] = "";
    if (argc > 9) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", argv[9]);
    request = malloc(body_len + 1024);
    request_len = (size_t)sprintf(request,
                                  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: "
                                  "application/json\r\n%sContent-Length: %zu\r\n\r\n",
                                  argv[3], argv[1], argv[2], auth, body_len);
    memcpy(request + request_len, body, body_len);
    request_len += body_len;

    int epoll = epoll_create1(0);
    conn_t *conns = calloc((size_t)n, sizeof *conns);
    for (int k = 0; k < n; k++) conns[k].fd = dial(epoll, k);

    long total = (long)(rate * seconds), next = 0, head = 0, sent = 0, answered = 0, errors = 0;
    double *pending = malloc(sizeof(double) * (size_t)total); /* due times waiting for a conn */
    double *latency = malloc(sizeof(double) * (size_t)total);
    long queued = 0;
    int rr = 0, in_flight = 0;
    double start = now() + 0.2, stop = start + seconds + 10.0;
    struct epoll_event events[256];

    for (;;) {
        double t = now();
        while (next < total && start + (double)next / rate <= t) {
            pending[queued++] = start + (double)next / rate;
            next++;
        }
        while (head < queued && in_flight < n) { /* oldest due first, next idle conn in turn */
            while (conns[rr].busy) rr = (rr + 1) % n;
            int index = rr;
            conn_t *c = &conns[index];
            rr = (rr + 1) % n;
            if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
                errors++;
                redial(c, epoll, index);
                head++;
                continue;
            }
            c->busy = 1;
            c->due = pending[head++];
            c->len = 0;
            in_flight++;
            sent++;
        }
        if ((next >= total && head >= queued && in_flight == 0) || t > stop) break;
        double wait = next < total ? start + (double)next / rate - t : 0.01;
        if (head < queued) wait = 0.01; /* every conn busy: wake on an answer */
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = wait > 0 ? (long)(wait * 1e9) : 0};
        if (wait >= 1.0) timeout.tv_sec = (time_t)wait, timeout.tv_nsec = 0;
        int ready = epoll_pwait2(epoll, events, 256, &timeout, NULL);
        if (ready < 0 && errno != EINTR) die("epoll_pwait2");
        for (int e = 0; e < ready; e++) {
            int index = (int)events[e].data.u32;
            conn_t *c = &conns[index];
            ssize_t got = recv(c->fd, c->buf + c->len, BUFFER - 1 - c->len, MSG_DONTWAIT);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) continue;
                if (c->busy) errors++, in_flight--;
                redial(c, epoll, index);
                continue;
            }
            c->len += (size_t)got;
            int status, closes;
            if (!c->busy || !complete(c, &status, &closes)) continue;
            double done = now();
            if (status == 200)
                latency[answered++] = (done - c->due) * 1e6;
            else
                errors++;
            c->busy = 0;
            c->len = 0;
            in_flight--;
            if (closes) redial(c, epoll, index);
        }
    }

    FILE *out = fopen(argv[8], "w");
    if (!out) die("out");
    for (long i = 0; i < answered; i++) fprintf(out, "%.1f\n", latency[i]);
    fprintf(out, "sent %ld answered %ld errors %ld unsent %ld\n", sent, answered,
            errors + in_flight, total - sent);
    fclose(out);
    return 0;
}
