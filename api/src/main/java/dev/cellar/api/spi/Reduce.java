package dev.cellar.api.spi;

/** Reductions along one axis. */
public enum Reduce {
    SUM, MAX
}
