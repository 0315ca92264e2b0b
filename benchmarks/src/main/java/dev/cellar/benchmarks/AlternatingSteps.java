package dev.cellar.benchmarks;

import dev.cellar.api.spi.Backend;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.autodiff.Optimizer;
import dev.cellar.autodiff.Optimizers;
import dev.cellar.text.LanguageModel;
import dev.cellar.text.TrainStep;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Training steps of several cells taking turns in one JVM, step by step, with {@code cellar bench}'s protocol (2 x 256,
 * batch 64 x window 100, vocabulary 65, Adam, steps replayed, data-parallel). Each cell's step time is then compared
 * with the first cell's step taken just before it, so the host's drift, which moves runs minutes apart by up to 2x
 * here, cancels out of the ratio.
 * <pre>
 * java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.cellar.benchmarks.AlternatingSteps [--steps 40] lstm gru rnn
 * </pre>
 * Prints, for each cell, its median step, tok/s, and the median (p10-p90) of its step time over the first cell's.
 */
public final class AlternatingSteps {
    private static final int BATCH = 64;
    private static final int SEQ = 100;
    private static final int WARMUP = 5;

    private AlternatingSteps() {
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (IllegalArgumentException e) { // an unknown cell or a --steps that is not a number
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        }
    }

    private static void run(String[] args) {
        int steps = 40;
        int first = 0;
        if (args.length >= 2 && args[0].equals("--steps")) {
            try {
                steps = Integer.parseInt(args[1]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--steps " + args[1] + ": expected a number of steps, such as 40");
            }
            first = 2;
        }
        String[] cells = Arrays.copyOfRange(args, first, args.length);
        if (cells.length == 0 || steps < 1) {
            System.err.println("usage: AlternatingSteps [--steps N >= 1] CELL [CELL...]  (e.g. lstm gru rnn transformer)");
            System.exit(2);
        }
        CellProvider[] providers = new CellProvider[cells.length];
        for (int c = 0; c < cells.length; c++) {
            providers[c] = Cpu.cell(cells[c]); // an unknown cell stops it before the backend opens
        }
        try (Backend be = Cpu.open(0)) {
            TrainStep[] ts = new TrainStep[cells.length];
            Optimizer[] opt = new Optimizer[cells.length];
            for (int c = 0; c < cells.length; c++) {
                LanguageModel m = Cpu.languageModel(be, providers[c], 2, 256, SEQ);
                opt[c] = Optimizers.adam(m.params(), 0.001);
                ts[c] = new TrainStep(m, be, BATCH, SEQ);
            }
            SplittableRandom r = new SplittableRandom(1);
            int[] ids = new int[BATCH * SEQ];
            int[] tg = new int[BATCH * SEQ];
            double[][] ms = new double[cells.length][steps];
            for (int i = 0; i < WARMUP + steps; i++) {
                for (int c = 0; c < cells.length; c++) {
                    for (int j = 0; j < ids.length; j++) {
                        ids[j] = r.nextInt(Cpu.VOCAB);
                        tg[j] = r.nextInt(Cpu.VOCAB);
                    }
                    long t0 = System.nanoTime();
                    ts[c].run(ids, tg, 0);
                    opt[c].step();
                    opt[c].zeroGrad();
                    if (i >= WARMUP) {
                        ms[c][i - WARMUP] = (System.nanoTime() - t0) / 1e6;
                    }
                }
                System.err.printf("\rround %d/%d", i + 1, WARMUP + steps);
            }
            System.err.println();
            for (int c = 0; c < cells.length; c++) {
                double[] sorted = ms[c].clone();
                Arrays.sort(sorted);
                double[] ratio = new double[steps];
                for (int i = 0; i < steps; i++) {
                    ratio[i] = ms[c][i] / ms[0][i];
                }
                Arrays.sort(ratio);
                double median = sorted[steps / 2];
                System.out.printf("%-12s median step %7.1f ms (%,.0f tok/s); step time over %s's: median %.3f (p10 %.3f, p90 %.3f)%n",
                        cells[c], median, BATCH * SEQ / median * 1000, cells[0], ratio[steps / 2], ratio[steps / 10],
                        ratio[steps * 9 / 10]);
            }
            for (TrainStep t : ts) {
                t.close();
            }
        }
    }
}
