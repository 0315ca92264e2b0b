package dev.cellar.cli;

import dev.cellar.api.spi.Backends;
import dev.cellar.kernels.opencl.OpenClProvider;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@code --device}, {@code generate --backend opencl} and the doctor's device lines. */
class DeviceFlagTest {
    private static void requireOpenCl() {
        var a = Backends.safeProbe(new OpenClProvider());
        if (!a.ok() && "true".equalsIgnoreCase(System.getProperty("cellar.requireOpenCL"))) {
            fail("cellar.requireOpenCL=true but the opencl backend is unavailable: " + a.reason());
        }
        assumeTrue(a.ok(), "no usable OpenCL platform here: " + a.reason());
    }

    @Test
    void aDeviceForABackendWithoutDevicesIsAUsageError() {
        Cli.assertUsage(Cli.run("generate", "--backend", "cpu", "--device", "0", "--prompt", "To be", "--length", "5"),
                "--device 0", "cpu has none", "--backend opencl");
    }

    @Test
    void anUnknownDeviceIsAUsageErrorListingTheDevices() {
        requireOpenCl();
        Cli.assertUsage(Cli.run("generate", "--backend", "opencl", "--device", "no-such-gpu", "--prompt", "To be", "--length", "5"),
                "--device 'no-such-gpu'", "#0");
    }

    @Test
    void generatingOnOpenClMatchesTheCpuBackend() {
        requireOpenCl();
        Cli.Result cpu = Cli.run("generate", "--backend", "cpu", "--prompt", "To be or not to be", "--length", "60", "--seed", "3");
        Cli.Result cl = Cli.run("generate", "--backend", "opencl", "--device", "0", "--prompt", "To be or not to be",
                "--length", "60", "--seed", "3");
        assertEquals(0, cpu.code(), cpu.err());
        assertEquals(0, cl.code(), cl.err());
        assertTrue(cpu.out().startsWith("To be or not to be") && cpu.out().length() > 60, cpu.out());
        assertEquals(cpu.out(), cl.out());
    }

    @Test
    void doctorListsEachOpenClDeviceWithItsSelfCheck() {
        requireOpenCl();
        Cli.Result r = Cli.run("doctor");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("PASS opencl")), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.trim().startsWith("PASS device 0: ")), r.out());
    }
}
