package dev.cellar.kernels.cpu;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Closed F32 buffers kept for reuse by size, so a training loop that closes its intermediates (one tape per step)
 * allocates almost nothing in steady state. Bounded: past {@code maxFloats} pooled floats (at most half the heap),
 * closed buffers go to the garbage collector, and the pool empties itself when the heap runs out. Too small a bound
 * costs dearly: buffers of hundreds of megabytes (word-level logits) that miss the pool are allocated straight into
 * the old generation, and every few steps a full collection pauses training for seconds.
 */
final class FloatPool {
    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();
    private final long maxFloats;
    private long pooled;

    FloatPool(long maxFloats) {
        this.maxFloats = Math.min(maxFloats, Runtime.getRuntime().maxMemory() / 2 / Float.BYTES);
    }

    /** An array of {@code size}, reused when one is free; zero-filled when {@code zero}, else holding old values. */
    synchronized float[] take(int size, boolean zero) {
        ArrayDeque<float[]> q = free.get(size);
        float[] a = q == null ? null : q.poll();
        if (a == null) {
            try {
                return new float[size];
            } catch (OutOfMemoryError e) {
                // pooled buffers are only a cache: give them to the collector before giving up
                free.clear();
                pooled = 0;
                return new float[size];
            }
        }
        pooled -= size;
        if (zero) {
            Arrays.fill(a, 0f);
        }
        return a;
    }

    synchronized void give(float[] a) {
        if (a.length == 0 || pooled + a.length > maxFloats) {
            return;
        }
        free.computeIfAbsent(a.length, n -> new ArrayDeque<>()).push(a);
        pooled += a.length;
    }
}
