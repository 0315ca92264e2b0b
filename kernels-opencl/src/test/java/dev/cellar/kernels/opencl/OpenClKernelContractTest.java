package dev.cellar.kernels.opencl;

import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.KernelContractTest;
import dev.cellar.api.spi.Kernels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import java.util.Set;

/**
 * The {@code opencl} backend against cpu-reference. Skipped with the probe's reason where no OpenCL platform exists;
 * a failure instead under {@code -Dcellar.requireOpenCL=true} (CI, with PoCL).
 */
class OpenClKernelContractTest extends KernelContractTest {
    private Backend cl;
    private Backend ref;

    @BeforeAll
    void open() {
        cl = OpenClFixture.openCl();
        ref = OpenClFixture.reference();
    }

    @AfterAll
    void close() {
        if (cl != null) {
            cl.close();
        }
    }

    @Override
    protected Kernels candidate() {
        return cl.kernels();
    }

    @Override
    protected Kernels reference() {
        return ref.kernels();
    }

    @Override
    protected Set<String> expectedFused() {
        return Set.of("lstm_step", "lstm_step_backward", "gru_step", "gru_step_backward", "softmax", "layer_norm");
    }
}
