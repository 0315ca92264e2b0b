package dev.cellar.kernels.opencl;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.BackendProvider;

/**
 * {@code opencl}: discovered at runtime, never crashes discovery. The kernels are not written yet, so the probe
 * reports what it finds (JOCL native library, platforms) and that the backend is not implemented; {@code open} fails
 * with that reason.
 */
public final class OpenClProvider implements BackendProvider {
    @Override
    public String id() {
        return "opencl";
    }

    @Override
    public int priority() {
        return 5;
    }

    @Override
    public Availability probe() {
        return Availability.unavailable(platforms() + "; the OpenCL kernels are not implemented yet, use --backend cpu");
    }

    /** What the OpenCL runtime reports, in words; never throws. */
    static String platforms() {
        try {
            org.jocl.CL.setExceptionsEnabled(false);
            int[] n = new int[1];
            int rc = org.jocl.CL.clGetPlatformIDs(0, null, n);
            if (rc == -1001 || (rc == 0 && n[0] == 0)) {
                return "no OpenCL platform (install an ICD, e.g. pocl-opencl-icd or a GPU driver)";
            }
            if (rc != 0) {
                return "OpenCL platform query failed: " + org.jocl.CL.stringFor_errorCode(rc);
            }
            return n[0] + " OpenCL platform" + (n[0] == 1 ? "" : "s") + " found";
        } catch (Throwable t) {
            return "JOCL native library cannot load (" + t.getClass().getSimpleName() + ": " + t.getMessage() + ")";
        }
    }

    @Override
    public Backend open(BackendConfig config) {
        throw new CellarException("backend 'opencl' is not available: " + probe().reason());
    }
}
