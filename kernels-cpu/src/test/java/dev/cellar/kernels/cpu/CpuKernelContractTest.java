package dev.cellar.kernels.cpu;

import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.BackendConfig;
import dev.cellar.api.spi.KernelContractTest;
import dev.cellar.api.spi.Kernels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code cpu} backend on its Vector API path (surefire adds jdk.incubator.vector) against cpu-reference. */
class CpuKernelContractTest extends KernelContractTest {
    /** Three threads whatever the machine, so large GEMMs and fused kernels split unevenly over the pool. */
    static final BackendConfig THREADS = new BackendConfig(3, null, Map.of());
    private Backend cpu;
    private final Kernels reference = new CpuReferenceProvider().open(BackendConfig.defaults()).kernels();

    @BeforeAll
    void open() {
        cpu = new CpuProvider().open(THREADS);
        assertTrue(cpu.description().contains("vector"), "expected the Vector API path: " + cpu.description());
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
                "cross_entropy_backward", "tanh_backward", "gelu_backward", "attention", "attention_backward");
    }
}
