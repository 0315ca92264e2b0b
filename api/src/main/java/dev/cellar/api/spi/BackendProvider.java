package dev.cellar.api.spi;

/**
 * A kernel backend found through {@link java.util.ServiceLoader}. Metadata is cheap and pure; {@link #probe()} is cheap
 * and never throws; {@link #open} does the heavy work.
 */
public interface BackendProvider {
    /** Stable id used by {@code --backend} and {@code CELLAR_BACKEND}: {@code cpu}, {@code cpu-reference}, {@code opencl}. */
    String id();

    /** Lower is preferred when no backend is requested. */
    int priority();

    /** Whether {@link #open} can work here, and why not. Never throws. */
    Availability probe();

    /**
     * The devices {@link #open} can choose between through {@link BackendConfig#device()}, each as
     * {@code "index: description"}, for {@code cellar doctor}. Empty for a backend without a choice. Never throws.
     */
    default java.util.List<String> devices() {
        return java.util.List.of();
    }

    /** Opens the backend; failures are wrapped in a {@link dev.cellar.api.CellarException} that says why. */
    Backend open(BackendConfig config);
}
