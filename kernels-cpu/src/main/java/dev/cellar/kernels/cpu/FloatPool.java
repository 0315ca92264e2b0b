package dev.cellar.kernels.cpu;

import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * Closed F32 buffers kept for reuse by size, so a training loop that closes its intermediates (one tape per step)
 * allocates almost nothing in steady state. Bounded: past {@code maxFloats} pooled floats (at most half the heap),
 * closed buffers go to the garbage collector, and the pool empties itself when the heap runs out: when an allocation
 * of its own fails, and when the old generation is still over 80% full after a collection (so that allocations
 * elsewhere, a checkpoint being written, do not fail while idle buffers sit here). Too small a bound
 * costs dearly: buffers of hundreds of megabytes (word-level logits) that miss the pool are allocated straight into
 * the old generation, and every few steps a full collection pauses training for seconds.
 */
final class FloatPool {
    /**
     * Free arrays by length, in an open-addressing table over int keys (0: empty; no empty array is pooled): a
     * HashMap boxed every length above 127 on each take and give, 8% of the bytes an LSTM training step allocated.
     */
    private int[] lengths = new int[64];
    private ArrayDeque<?>[] queues = new ArrayDeque<?>[64];
    private int used;
    private final long maxFloats;
    private long pooled;

    FloatPool(long maxFloats) {
        this.maxFloats = Math.min(maxFloats, Runtime.getRuntime().maxMemory() / 2 / Float.BYTES);
        synchronized (POOLS) {
            POOLS.add(this);
        }
    }

    /** Every live pool, emptied when the heap is nearly full after a collection. */
    private static final java.util.Set<FloatPool> POOLS = java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>());

    static {
        try {
            for (java.lang.management.MemoryPoolMXBean mp : java.lang.management.ManagementFactory.getMemoryPoolMXBeans()) {
                String name = mp.getName();
                long max = mp.getUsage().getMax();
                if (mp.getType() == java.lang.management.MemoryType.HEAP && mp.isCollectionUsageThresholdSupported() && max > 0
                        && (name.contains("Old") || name.contains("Tenured"))) {
                    mp.setCollectionUsageThreshold(max / 10 * 8);
                }
            }
            ((javax.management.NotificationEmitter) java.lang.management.ManagementFactory.getMemoryMXBean()).addNotificationListener(
                    (n, handback) -> {
                        if (java.lang.management.MemoryNotificationInfo.MEMORY_COLLECTION_THRESHOLD_EXCEEDED.equals(n.getType())) {
                            clearAll();
                        }
                    }, null, null);
        } catch (RuntimeException | LinkageError e) {
            // no management beans (a stripped runtime): the pool still empties itself when its own allocation fails
        }
    }

    static void clearAll() {
        java.util.List<FloatPool> all;
        synchronized (POOLS) {
            all = new java.util.ArrayList<>(POOLS);
        }
        all.forEach(FloatPool::clear);
    }

    synchronized void clear() {
        Arrays.fill(lengths, 0);
        Arrays.fill(queues, null);
        used = 0;
        pooled = 0;
    }

    /** Floats held for reuse now (for tests). */
    synchronized long pooled() {
        return pooled;
    }

    /** An array of {@code size}, reused when one is free; zero-filled when {@code zero}, else holding old values. */
    float[] take(int size, boolean zero) {
        float[] a = poll(size);
        if (a == null) {
            try {
                return new float[size];
            } catch (OutOfMemoryError e) {
                // pooled buffers are only a cache, every pool's (a replica's idle buffers too): give them to the
                // collector before giving up; outside this pool's lock, since clearAll takes each pool's in turn
                clearAll();
                return new float[size];
            }
        }
        if (zero) {
            Arrays.fill(a, 0f);
        }
        return a;
    }

    private synchronized float[] poll(int size) {
        ArrayDeque<float[]> q = queue(size, false);
        float[] a = q == null ? null : q.poll();
        if (a != null) {
            pooled -= size;
        }
        return a;
    }

    synchronized void give(float[] a) {
        if (a.length == 0 || pooled + a.length > maxFloats) {
            return;
        }
        queue(a.length, true).push(a);
        pooled += a.length;
    }

    /** The free arrays of {@code length}, or null when there are none and {@code create} is false. */
    @SuppressWarnings("unchecked")
    private ArrayDeque<float[]> queue(int length, boolean create) {
        int i = indexOf(length);
        if (lengths[i] == length) {
            return (ArrayDeque<float[]>) queues[i];
        }
        if (!create) {
            return null;
        }
        if (2 * (used + 1) > lengths.length) { // at most half full, so probes stay short
            grow();
            return queue(length, true);
        }
        ArrayDeque<float[]> q = new ArrayDeque<>();
        lengths[i] = length;
        queues[i] = q;
        used++;
        return q;
    }

    /** The slot that holds {@code length}, or the empty one where it would go: linear probing from its hash. */
    private int indexOf(int length) {
        int mask = lengths.length - 1;
        int h = length * 0x9E3779B9;
        int i = (h ^ (h >>> 16)) & mask;
        while (lengths[i] != 0 && lengths[i] != length) {
            i = (i + 1) & mask;
        }
        return i;
    }

    private void grow() {
        int[] oldLengths = lengths;
        ArrayDeque<?>[] oldQueues = queues;
        lengths = new int[oldLengths.length * 2];
        queues = new ArrayDeque<?>[oldLengths.length * 2];
        for (int j = 0; j < oldLengths.length; j++) {
            if (oldLengths[j] != 0) {
                int i = indexOf(oldLengths[j]); // an empty slot: the lengths are distinct
                lengths[i] = oldLengths[j];
                queues[i] = oldQueues[j];
            }
        }
    }
}
