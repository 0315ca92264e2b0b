package dev.cellar.kernels.opencl;

import dev.cellar.api.CellarException;
import dev.cellar.api.spi.Availability;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.Backends;
import dev.cellar.kernels.opencl.internal.ClDevice;
import org.jocl.CLException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Probing never throws and says why; device choice errors list the devices. Needs no OpenCL platform. */
class OpenClProviderTest {
    private static ClDevice fake(int index, String name, long wg, long local) {
        return new ClDevice(index, null, null, "Fake Platform", name, wg, local, false, name.contains("GPU")
                || name.contains("RTX"));
    }

    @Test
    void missingNativeLibraryIsReported() {
        Availability a = new OpenClProvider(() -> {
            throw new UnsatisfiedLinkError("no JOCL_2_0_6-linux-x86_64 in java.library.path");
        }).probe();
        assertFalse(a.ok());
        assertTrue(a.reason().contains("JOCL native library"), a.reason());
        assertTrue(a.reason().contains("pocl-opencl-icd"), a.reason());
    }

    @Test
    void aMissingIcdLoaderIsReportedBeforeJoclIsTouched() {
        Availability a = new OpenClProvider(() -> {
            throw new OpenClLoader.Missing();
        }).probe();
        assertFalse(a.ok());
        assertTrue(a.reason().startsWith("no OpenCL ICD loader: libOpenCL.so.1 is not installed"), a.reason());
        assertTrue(a.reason().contains("apt-get install pocl-opencl-icd ocl-icd-libopencl1"), a.reason());
    }

    @Test
    void theIcdLoaderIsFoundInTheLinkerCacheOrALibraryDirectory(@TempDir Path dir) throws Exception {
        assertTrue(OpenClLoader.present("Mac OS X", List.of(), ""), "only Linux is checked");
        assertTrue(OpenClLoader.present("Linux", List.of(), "\0libOpenCL.so.1\0/usr/lib/x86_64-linux-gnu/libOpenCL.so.1\0"));
        assertFalse(OpenClLoader.present("Linux", List.of(dir), "\0libc.so.6\0"));
        Files.createFile(dir.resolve("libOpenCL.so.1"));
        assertTrue(OpenClLoader.present("Linux", List.of(dir.resolve("elsewhere"), dir), ""));
    }

    @Test
    void missingPlatformIsReported() {
        Availability a = new OpenClProvider(() -> {
            throw new CLException("CL_PLATFORM_NOT_FOUND_KHR", -1001);
        }).probe();
        assertFalse(a.ok());
        assertTrue(a.reason().contains("no OpenCL platform"), a.reason());
        assertTrue(a.reason().contains("-1001"), a.reason());
    }

    @Test
    void anyOtherFailureStillYieldsAReason() {
        Availability a = new OpenClProvider(() -> {
            throw new IllegalStateException("driver exploded");
        }).probe();
        assertFalse(a.ok());
        assertTrue(a.reason().contains("driver exploded"), a.reason());
        Availability none = new OpenClProvider(List::of).probe();
        assertFalse(none.ok());
        assertTrue(none.reason().contains("no OpenCL platform or device"), none.reason());
    }

    @Test
    void devicesWithoutTheNeededFeaturesAreNamed() {
        Availability a = new OpenClProvider(() -> List.of(fake(0, "Tiny DSP", 16, 4096))).probe();
        assertFalse(a.ok());
        assertTrue(a.reason().contains("Tiny DSP") && a.reason().contains("work-group size >= 64"), a.reason());
        assertTrue(new OpenClProvider(() -> List.of(fake(0, "Big GPU", 1024, 64 * 1024))).probe().ok());
    }

    @Test
    void deviceChoiceByIndexOrNameAndAClearErrorOtherwise() {
        List<ClDevice> ds = List.of(fake(0, "Intel Xeon", 4096, 256 * 1024), fake(1, "NVIDIA RTX", 1024, 48 * 1024));
        assertEquals("NVIDIA RTX", OpenClProvider.choose(ds, "1").name());
        assertEquals("NVIDIA RTX", OpenClProvider.choose(ds, "rtx").name());
        assertEquals("NVIDIA RTX", OpenClProvider.choose(ds, null).name(), "a GPU is preferred when none is named");
        assertEquals("Intel Xeon", OpenClProvider.choose(ds.subList(0, 1), null).name());
        CellarException e = assertThrows(CellarException.class, () -> OpenClProvider.choose(ds, "radeon"));
        assertTrue(e.getMessage().contains("radeon") && e.getMessage().contains("#1 NVIDIA RTX"), e.getMessage());
        CellarException open = assertThrows(CellarException.class, () -> new OpenClProvider(() -> {
            throw new UnsatisfiedLinkError("nope");
        }).open(BackendConfig.defaults()));
        assertTrue(open.getMessage().contains("JOCL native library"), open.getMessage());
    }

    @Test
    void registeredAsAService() {
        assertTrue(Backends.discover(getClass().getClassLoader()).containsKey("opencl"));
    }

    @Test
    void preferredOverTheCpuBackendOnlyWithAGpu() {
        assertEquals(5, new OpenClProvider(() -> List.of(fake(0, "Big GPU", 1024, 64 * 1024))).priority());
        assertEquals(50, new OpenClProvider(() -> List.of(fake(0, "Intel Xeon", 4096, 256 * 1024))).priority(),
                "an OpenCL CPU device (PoCL) is slower than the cpu backend (priority 10)");
        assertEquals(50, new OpenClProvider(() -> {
            throw new UnsatisfiedLinkError("nope");
        }).priority());
    }
}
