package dev.cellar.api.spi;

/** A cell option ({@code heads}, {@code peepholes}) with its default and one line of help. */
public record HyperParameter(String name, String defaultValue, String description) {
}
