package dev.cellar.text;

import dev.cellar.api.DType;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.State;
import dev.cellar.autodiff.Tape;

import java.util.List;

/**
 * Loss over a whole split like char-rnn's eval_split (and bench_lm.py's evaluate): contiguous windows, state carried,
 * no gradients.
 */
public final class Evaluator {
    private Evaluator() {
    }

    /** Loss in nats per token, bits per character and perplexity per token. */
    public record Result(double natsPerToken, double bitsPerChar, double perplexity, long tokens) {
        static Result of(double nats, double charsPerToken, long tokens) {
            return new Result(nats, nats / Math.log(2) / charsPerToken, Math.exp(nats), tokens);
        }
    }

    public static Result evaluate(LanguageModel model, Backend backend, int[] ids, int batch, int seq, double charsPerToken) {
        int b = Math.max(1, Math.min(batch, (ids.length - 1) / Math.max(1, seq)));
        Batcher batches = new Batcher(ids, b, seq);
        double total = 0;
        long n = 0;
        List<State> state = null;
        for (int w = 0; w < batches.windowsPerEpoch(); w++) {
            Batcher.Batch bt = batches.next();
            try (Tape tape = Tape.on(backend, DType.F32, 0)) {
                tape.setTraining(false);
                List<State> s0 = state == null ? model.initialState(tape, b) : Trainer.adopt(tape, state);
                double[] loss = new double[1];
                List<State> next = tape.noGrad(() -> {
                    Tensor x = tape.ids(bt.ids(), Shape.of(b, seq));
                    Tensor y = tape.ids(bt.targets(), Shape.of(b, seq));
                    LanguageModel.Output o = model.forward(tape, x, s0);
                    loss[0] = tape.crossEntropy(o.logits(), y).item();
                    return o.state();
                });
                total += loss[0] * b * seq;
                n += (long) b * seq;
                state = Trainer.carry(tape, next);
            }
        }
        return Result.of(total / n, charsPerToken, n);
    }
}
