package dev.cellar.kernels.cpu;

import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.KernelContractTest;
import dev.cellar.api.spi.Kernels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code cpu} backend's scalar fallback, forced with {@code -Dcellar.cpu.scalar=true}, against cpu-reference. */
class CpuScalarKernelContractTest extends KernelContractTest {
    private Backend cpu;
    private final Kernels reference = new CpuReferenceProvider().open(BackendConfig.defaults()).kernels();

    @BeforeAll
    void open() {
        String old = System.setProperty("cellar.cpu.scalar", "true");
        try {
            cpu = new CpuProvider().open(CpuKernelContractTest.THREADS);
        } finally {
            if (old == null) {
                System.clearProperty("cellar.cpu.scalar");
            } else {
                System.setProperty("cellar.cpu.scalar", old);
            }
        }
        assertTrue(cpu.description().contains("scalar"), "expected the scalar path: " + cpu.description());
    }

    @AfterAll
    void close() {
        cpu.close();
    }

    @Override
    protected Kernels candidate() {
        return cpu.kernels();
    }

    @Override
    protected Kernels reference() {
        return reference;
    }

    @Override
    protected Set<String> expectedFused() {
        return Set.of("lstm_step", "lstm_step_backward", "gru_step", "gru_step_backward", "softmax", "softmax_backward",
                "layer_norm", "layer_norm_backward",
                "cross_entropy",
                "cross_entropy_backward");
    }
}
