package dev.cellar.autodiff;

/** Learning rate as a function of the optimizer step (0-based). */
@FunctionalInterface
public interface Schedule {
    double lr(long step);

    static Schedule constant(double lr) {
        return s -> lr;
    }

    /** lr * gamma^(step / every). */
    static Schedule step(double lr, long every, double gamma) {
        return s -> lr * Math.pow(gamma, Math.floorDiv(s, every));
    }

    /** Cosine decay from lr to minLr over total steps, then minLr. */
    static Schedule cosine(double lr, long total, double minLr) {
        return s -> s >= total ? minLr : minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * s / total));
    }
}
