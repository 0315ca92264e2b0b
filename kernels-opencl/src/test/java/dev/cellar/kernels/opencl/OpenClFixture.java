package dev.cellar.kernels.opencl;

import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Opens opencl (skipping with the probe's reason, or failing under -Dcellar.requireOpenCL=true) and cpu-reference. */
final class OpenClFixture {
    private OpenClFixture() {
    }

    static boolean required() {
        return "true".equalsIgnoreCase(System.getProperty("cellar.requireOpenCL"));
    }

    static Backend openCl() {
        OpenClProvider p = new OpenClProvider();
        Availability a = p.probe();
        if (!a.ok()) {
            if (required()) {
                fail("cellar.requireOpenCL=true but the opencl backend is unavailable: " + a.reason());
            }
            assumeTrue(false, "skipped: no usable OpenCL platform here: " + a.reason());
        }
        return p.open(BackendConfig.defaults());
    }

    static Backend reference() {
        return Backends.select(Backends.discover(OpenClFixture.class.getClassLoader()), "cpu-reference", null)
                .open(BackendConfig.defaults());
    }
}
