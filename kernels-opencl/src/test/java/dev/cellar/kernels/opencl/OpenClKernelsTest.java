package dev.cellar.kernels.opencl;

import dev.cellar.api.CellarException;
import dev.cellar.api.DType;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.Kernels;
import dev.cellar.api.spi.Storage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What is particular to the opencl backend: its description and F64 following the device. Every primitive and fused
 * kernel is checked against cpu-reference by {@link OpenClKernelContractTest}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenClKernelsTest {
    private Backend cl;
    private Kernels k;

    @BeforeAll
    void open() {
        cl = OpenClFixture.openCl();
        k = cl.kernels();
    }

    @AfterAll
    void close() {
        if (cl != null) {
            cl.close();
        }
    }

    @Test
    void theDescriptionNamesTheBackend() {
        assertTrue(cl.description().startsWith("opencl: "), cl.description());
    }

    @Test
    void f64FollowsTheDevice() {
        if (cl.description().contains("F64")) {
            Storage s = k.allocate(DType.F64, 3);
            k.write(s, new double[]{1e-300, 1.0 / 3, -2});
            assertArrayEquals(new double[]{1e-300, 1.0 / 3, -2}, k.readDoubles(s));
        } else {
            CellarException e = assertThrows(CellarException.class, () -> k.allocate(DType.F64, 3));
            assertTrue(e.getMessage().contains("cl_khr_fp64"), e.getMessage());
        }
    }
}
