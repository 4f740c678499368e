/* vfio-check GROUP PCI-ADDRESS: open a VFIO group the way QEMU does and report whether a VM could use it.
 * Exit 0: the group is viable, a container with the TYPE1 IOMMU is set and the device fd opens.
 * Exit 3: the group is not viable (an endpoint of the group is not bound to vfio-pci).
 * Exit 1: anything else failed (message on stderr); exit 2: usage. Built with gcc -static for the test guest. */
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    char group_path[64];
    int container, group, device;
    struct vfio_group_status status = {.argsz = sizeof status};
    struct vfio_device_info info = {.argsz = sizeof info};

    if (argc != 3) {
        fprintf(stderr, "usage: %s GROUP PCI-ADDRESS\n", argv[0]);
        return 2;
    }
    snprintf(group_path, sizeof group_path, "/dev/vfio/%s", argv[1]);
    container = open("/dev/vfio/vfio", O_RDWR);
    if (container < 0)
        return fail("/dev/vfio/vfio");
    if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
        return fail("VFIO_GET_API_VERSION");
    if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) != 1)
        return fail("VFIO_CHECK_EXTENSION(TYPE1)");
    group = open(group_path, O_RDWR);
    if (group < 0)
        return fail(group_path);
    if (ioctl(group, VFIO_GROUP_GET_STATUS, &status))
        return fail("VFIO_GROUP_GET_STATUS");
    printf("%s viable=%d\n", group_path, (status.flags & VFIO_GROUP_FLAGS_VIABLE) ? 1 : 0);
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
        return 3;
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
        return fail("VFIO_GROUP_SET_CONTAINER");
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU))
        return fail("VFIO_SET_IOMMU");
    device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[2]);
    if (device < 0)
        return fail("VFIO_GROUP_GET_DEVICE_FD");
    if (ioctl(device, VFIO_DEVICE_GET_INFO, &info))
        return fail("VFIO_DEVICE_GET_INFO");
    printf("%s device fd: flags=0x%x regions=%u irqs=%u\n", argv[2], info.flags, info.num_regions, info.num_irqs);
    close(device);
    close(group);
    close(container);
    return 0;
}
