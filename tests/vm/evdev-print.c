/* Guest side of the SPICE input harness: prints every key, button, relative and absolute event of every
 * /dev/input/event* device on stdout (the serial console), one line each:
 *   EVDEV <n> KEY <code> <value>     (value 1 press, 0 release, 2 repeat)
 *   EVDEV <n> ABS <axis> <value>
 *   EVDEV <n> REL <axis> <value>
 * and at start one line per device: EVDEVICE <n> <name> absx=<min>..<max> absy=<min>..<max>. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAXDEV 16

int main(void) {
    struct pollfd fds[MAXDEV];
    int num[MAXDEV], n = 0;
    char path[64], name[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 32 && n < MAXDEV; i++) {
        snprintf(path, sizeof path, "/dev/input/event%d", i);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        memset(name, 0, sizeof name);
        ioctl(fd, EVIOCGNAME(sizeof name - 1), name);
        struct input_absinfo ax = {0}, ay = {0};
        ioctl(fd, EVIOCGABS(ABS_X), &ax);
        ioctl(fd, EVIOCGABS(ABS_Y), &ay);
        for (char *c = name; *c; c++) if (*c == ' ') *c = '_';
        printf("EVDEVICE %d %s absx=%d..%d absy=%d..%d\n", i, name, ax.minimum, ax.maximum, ay.minimum, ay.maximum);
        fds[n].fd = fd;
        fds[n].events = POLLIN;
        num[n++] = i;
    }
    printf("EVDEV-READY %d\n", n);
    for (;;) {
        if (poll(fds, n, -1) < 0) continue;
        for (int k = 0; k < n; k++) {
            if (!(fds[k].revents & POLLIN)) continue;
            struct input_event ev[64];
            ssize_t r = read(fds[k].fd, ev, sizeof ev);
            for (int j = 0; r > 0 && j < (int)(r / sizeof ev[0]); j++) {
                const char *t = ev[j].type == EV_KEY ? "KEY" : ev[j].type == EV_ABS ? "ABS" : ev[j].type == EV_REL ? "REL" : NULL;
                if (t) printf("EVDEV %d %s %u %d\n", num[k], t, ev[j].code, ev[j].value);
            }
        }
    }
}
