package dev.cellar.cells;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cellar.api.DType;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.State;
import dev.cellar.autodiff.Params;
import dev.cellar.autodiff.Tape;
import dev.cellar.cells.kit.CellChecks;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * rnn, lstm and gru equal PyTorch's nn.RNN / nn.LSTM / nn.GRU in outputs and in the gradients of sum(out * r) w.r.t.
 * the input, the initial state and every parameter. The fixture was written by src/test/python/make_fixture.py
 * (float64); we replay it in F64 on cpu-reference, through the hoisted {@code sequence} path and through {@code step}.
 */
class PytorchEquivalenceTest {
    static final double TOL = 1e-12;

    static JsonNode fixture() throws IOException {
        try (InputStream in = PytorchEquivalenceTest.class.getResourceAsStream("/pytorch-fixture.json")) {
            return new ObjectMapper().readTree(in);
        }
    }

    static double[] arr(JsonNode n) {
        double[] d = new double[n.size()];
        for (int i = 0; i < d.length; i++) {
            d[i] = n.get(i).asDouble();
        }
        return d;
    }

    static double maxAbs(double[] want, double[] got, String what) {
        assertEquals(want.length, got.length, what + " length");
        double m = 0;
        for (int i = 0; i < want.length; i++) {
            m = Math.max(m, Math.abs(want[i] - got[i]));
        }
        assertTrue(m <= TOL, what + ": max abs difference " + m + " > " + TOL);
        return m;
    }

    @ParameterizedTest
    @ValueSource(strings = {"rnn-sequence", "lstm-sequence", "gru-sequence", "rnn-step", "lstm-step", "gru-step"})
    void matchesPytorch(String which) throws IOException {
        String id = which.substring(0, which.indexOf('-'));
        boolean stepwise = which.endsWith("-step");
        JsonNode c = fixture().get("cases").get(id);
        int b = c.get("batch").asInt(), t = c.get("time").asInt(), in = c.get("input").asInt(), h = c.get("hidden").asInt();
        CellProvider p = Map.<String, CellProvider>of("rnn", new Rnn(), "lstm", new Lstm(), "gru", new Gru()).get(id);
        Cell cell = p.create(new CellConfig(in, h, 0, 1, Map.of()), Params.creator(CellChecks.REF, DType.F64, new SplittableRandom(1)));
        for (Param par : cell.params()) {
            par.load(arr(c.get("params").get(par.name())));
            par.zeroGrad();
        }
        double worst = 0;
        try (Tape tape = Tape.on(CellChecks.REF, DType.F64, 0)) {
            Tensor x = tape.leaf(arr(c.get("x")), Shape.of(b, t, in));          // (B, T, I)
            List<Tensor> s0 = new ArrayList<>();
            for (JsonNode s : c.get("state")) {
                s0.add(tape.leaf(arr(s), Shape.of(b, h)));                      // (B, H)
            }
            Tensor out;
            if (stepwise) {
                State s = State.of(s0.toArray(Tensor[]::new));
                List<Tensor> outs = new ArrayList<>();
                for (int i = 0; i < t; i++) {
                    var st = cell.step(tape, tape.reshape(tape.slice(x, 1, i, i + 1), b, in), s); // (B, I) -> (B, H)
                    outs.add(st.out());
                    s = st.next();
                }
                out = tape.stack(1, outs);                                       // (B, T, H)
            } else {
                out = cell.sequence(tape, x, State.of(s0.toArray(Tensor[]::new))).out();
            }
            worst = Math.max(worst, maxAbs(arr(c.get("out")), out.toDoubles(), which + " out"));
            tape.backward(tape.sum(tape.mul(out, tape.constant(arr(c.get("r")), Shape.of(b, t, h)))));
            worst = Math.max(worst, maxAbs(arr(c.get("grad_x")), tape.grad(x).toDoubles(), which + " grad x"));
            for (int i = 0; i < s0.size(); i++) {
                worst = Math.max(worst, maxAbs(arr(c.get("grad_state").get(i)), tape.grad(s0.get(i)).toDoubles(), which + " grad state " + i));
            }
            for (Param par : cell.params()) {
                worst = Math.max(worst, maxAbs(arr(c.get("grad_params").get(par.name())), par.grad().toDoubles(), which + " grad " + par.name()));
            }
        }
        System.out.printf("pytorch equivalence %s: max abs difference %.3g%n", which, worst);
    }
}
