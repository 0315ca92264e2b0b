package dev.cellar.text;

import dev.cellar.api.spi.Backend;

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
        try (TrainStep step = new TrainStep(model, backend, b, seq)) { // split between replicas as training is
            for (int w = 0; w < batches.windowsPerEpoch(); w++) {
                Batcher.Batch bt = batches.next();
                total += step.evaluate(bt.ids(), bt.targets()) * b * seq;
                n += (long) b * seq;
            }
        }
        return Result.of(total / n, charsPerToken, n);
    }
}
