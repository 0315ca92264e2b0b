package dev.cellar.text;

import dev.cellar.api.CellarException;

/**
 * char-rnn batching: the ids are cut into {@code batch} contiguous rows and read in windows of {@code seq}; window
 * i holds columns [i*seq, (i+1)*seq) of every row, targets are the next ids. Models carry state from window to window
 * and reset it when {@link Batch#newEpoch()} is true.
 */
public final class Batcher {
    private final int[] x;
    private final int[] y;
    private final int batch;
    private final int seq;
    private final int windows;
    private final int rowLength;
    private int position;

    /** One window: ids and targets (B*T, row-major (B, T)). */
    public record Batch(int[] ids, int[] targets, boolean newEpoch, int index) {
    }

    public Batcher(int[] data, int batch, int seq) {
        if (batch <= 0 || seq <= 0) {
            throw new CellarException("batch " + batch + " and window " + seq + " must be positive");
        }
        int nb = (data.length - 1) / (batch * seq);
        if (nb <= 0) {
            throw new CellarException("the text has " + data.length + " tokens, too few for one batch of " + batch + " x "
                    + seq + " (+1); use a longer text or smaller --batch/--seq");
        }
        int n = nb * batch * seq;
        this.x = java.util.Arrays.copyOfRange(data, 0, n);
        this.y = java.util.Arrays.copyOfRange(data, 1, n + 1);
        this.batch = batch;
        this.seq = seq;
        this.windows = nb;
        this.rowLength = n / batch;
    }

    public int windowsPerEpoch() {
        return windows;
    }

    /** Index of the next window (for checkpoints). */
    public int position() {
        return position;
    }

    public void seek(int window) {
        if (window < 0 || window >= windows) {
            throw new CellarException("batch position " + window + " outside 0.." + (windows - 1));
        }
        position = window;
    }

    public Batch next() {
        int i = position;
        int[] ids = new int[batch * seq];
        int[] tg = new int[batch * seq];
        for (int r = 0; r < batch; r++) {
            System.arraycopy(x, r * rowLength + i * seq, ids, r * seq, seq);
            System.arraycopy(y, r * rowLength + i * seq, tg, r * seq, seq);
        }
        position = (position + 1) % windows;
        return new Batch(ids, tg, i == 0, i);
    }
}
