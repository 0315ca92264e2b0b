package dev.cellar.kernels.cpu;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Closed F32 buffers kept for reuse by size, so a training loop that closes its intermediates (one tape per step)
 * allocates almost nothing in steady state. Bounded: past {@code maxFloats} pooled floats, closed buffers go to
 * the garbage collector.
 */
final class FloatPool {
    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();
    private final long maxFloats;
    private long pooled;

    FloatPool(long maxFloats) {
        this.maxFloats = maxFloats;
    }

    /** An array of {@code size}, reused when one is free; zero-filled when {@code zero}, else holding old values. */
    synchronized float[] take(int size, boolean zero) {
        ArrayDeque<float[]> q = free.get(size);
        float[] a = q == null ? null : q.poll();
        if (a == null) {
            return new float[size];
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
