package dev.cellar.api.spi;

/**
 * A cell found through {@link java.util.ServiceLoader} ({@code META-INF/services/dev.cellar.api.spi.CellProvider}).
 * {@link #id()} and {@link #spec()} are cheap and pure; {@link #create} builds parameters.
 */
public interface CellProvider {
    /** Stable id used by {@code --cell}: lowercase letters, digits and dashes. */
    String id();

    CellSpec spec();

    Cell create(CellConfig config, ParamInit init);
}
