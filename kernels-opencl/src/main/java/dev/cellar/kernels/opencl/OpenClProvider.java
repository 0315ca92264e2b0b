package dev.cellar.kernels.opencl;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;
import dev.cellar.api.spi.Kernels;
import dev.cellar.kernels.opencl.internal.ClDevice;
import dev.cellar.kernels.opencl.internal.ClKernels;

import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * {@code opencl}: kernels on an OpenCL device through JOCL (PoCL on CPUs, vendor ICDs on GPUs). Probing lists the
 * platforms and never throws; opening builds the programs once for the chosen device.
 */
public final class OpenClProvider implements BackendProvider {
    /** CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no installed platform. */
    static final int PLATFORM_NOT_FOUND = -1001;

    private final Supplier<List<ClDevice>> devices;

    public OpenClProvider() {
        this(() -> {
            OpenClLoader.require(); // before JOCL, which prints its own load failure to stdout
            return ClDevice.list();
        });
    }

    /** For tests: {@code devices} stands in for the JOCL device listing and may throw what JOCL throws. */
    OpenClProvider(Supplier<List<ClDevice>> devices) {
        this.devices = devices;
    }

    @Override
    public String id() {
        return "opencl";
    }

    /**
     * 5 (ahead of the pure-Java {@code cpu} backend's 10) when a usable GPU or accelerator is present; 50 otherwise,
     * because an OpenCL CPU device (PoCL) is slower than {@code cpu} on the same cores and should only run when
     * asked for with {@code --backend opencl}. Computed once from the device listing; never throws.
     */
    @Override
    public int priority() {
        Integer p = priority;
        if (p == null) {
            try {
                p = devices.get().stream().anyMatch(d -> d.usable() && d.gpu()) ? 5 : 50;
            } catch (Throwable t) {
                p = 50;
            }
            priority = p;
        }
        return p;
    }

    private volatile Integer priority;

    @Override
    public Availability probe() {
        try {
            List<ClDevice> all = devices.get();
            List<ClDevice> usable = all.stream().filter(ClDevice::usable).toList();
            if (all.isEmpty()) {
                return Availability.unavailable("no OpenCL platform or device found; " + INSTALL_HINT);
            }
            if (usable.isEmpty()) {
                return Availability.unavailable("no OpenCL device has a work-group size >= " + ClDevice.MIN_WORK_GROUP
                        + " and " + ClDevice.MIN_LOCAL_MEM / 1024 + " KiB local memory: " + summaries(all));
            }
            return Availability.available(usable.get(0).summary() + (usable.size() > 1
                    ? " (+" + (usable.size() - 1) + " more; pick with --device)" : ""));
        } catch (Throwable t) {
            try {
                return Availability.unavailable(reason(t));
            } catch (Throwable again) {
                return Availability.unavailable("OpenCL probe failed: " + t);
            }
        }
    }

    @Override
    public List<String> devices() {
        try {
            return devices.get().stream()
                    .map(d -> d.index() + ": " + d.summary().substring(d.summary().indexOf(' ') + 1)
                            + (d.usable() ? "" : " (unusable: below the minimum work-group or local memory)"))
                    .toList();
        } catch (Throwable t) {
            return List.of();
        }
    }

    static final String INSTALL_HINT = "install an OpenCL ICD (CPU: apt-get install pocl-opencl-icd ocl-icd-libopencl1; "
            + "GPU: the vendor driver) and check with clinfo";

    /** Why the probe failed, in words a user can act on. */
    static String reason(Throwable t) {
        if (t instanceof OpenClLoader.Missing) {
            return t.getMessage() + "; " + INSTALL_HINT;
        }
        if (t instanceof UnsatisfiedLinkError || t instanceof NoClassDefFoundError
                || t instanceof ExceptionInInitializerError) {
            return "the JOCL native library (or libOpenCL.so) cannot load: " + t + "; " + INSTALL_HINT;
        }
        // by name: org.jocl classes may be the very thing that failed to load
        String msg = String.valueOf(t.getMessage());
        if (t.getClass().getName().equals("org.jocl.CLException")
                && (msg.contains("PLATFORM_NOT_FOUND") || msg.contains(String.valueOf(PLATFORM_NOT_FOUND)))) {
            return "no OpenCL platform (CL_PLATFORM_NOT_FOUND_KHR, -1001): no ICD is installed in /etc/OpenCL/vendors; "
                    + INSTALL_HINT;
        }
        return "OpenCL probe failed: " + t + "; " + INSTALL_HINT;
    }

    private static String summaries(List<ClDevice> ds) {
        return ds.stream().map(ClDevice::summary).collect(Collectors.joining("; "));
    }

    /** The device named by {@code spec} (index or case-insensitive name substring), or the first usable one. */
    static ClDevice choose(List<ClDevice> all, String spec) {
        List<ClDevice> usable = all.stream().filter(ClDevice::usable).toList();
        if (usable.isEmpty()) {
            throw new CellarException("no usable OpenCL device (" + (all.isEmpty() ? "none found" : summaries(all))
                    + "); " + INSTALL_HINT);
        }
        if (spec == null || spec.isBlank()) {
            return usable.stream().filter(ClDevice::gpu).findFirst().orElse(usable.get(0));
        }
        String s = spec.trim();
        if (s.chars().allMatch(Character::isDigit)) {
            int i = Integer.parseInt(s);
            for (ClDevice d : usable) {
                if (d.index() == i) {
                    return d;
                }
            }
        } else {
            for (ClDevice d : usable) {
                String text = (d.name() + " " + d.platformName()).toLowerCase(java.util.Locale.ROOT);
                if (text.contains(s.toLowerCase(java.util.Locale.ROOT))) {
                    return d;
                }
            }
        }
        throw new CellarException("no OpenCL device matches --device '" + spec + "'; devices: " + summaries(all)
                + "; pass an index or part of a name");
    }

    @Override
    public Backend open(BackendConfig config) {
        ClKernels k;
        try {
            k = new ClKernels(choose(devices.get(), config.device()));
        } catch (CellarException e) {
            throw e;
        } catch (Throwable t) {
            throw new CellarException("cannot open the opencl backend: " + reason(t), t);
        }
        ClDevice d = k.device();
        String description = "opencl: " + d.name() + " on " + d.platformName() + " (device #" + d.index()
                + ", max work-group " + d.maxWorkGroupSize() + ", local mem " + d.localMemBytes() / 1024 + " KiB, "
                + (d.fp64() ? "F32+F64" : "F32 only") + ", " + k.tileDescription() + ")";
        return new Backend() {
            @Override
            public String id() {
                return "opencl";
            }

            @Override
            public String description() {
                return description;
            }

            @Override
            public Kernels kernels() {
                return k;
            }

            @Override
            public void close() {
                k.close();
            }
        };
    }
}
