package dev.cellar.api.spi;

/** The answer of a cheap probe: usable or not, and why. */
public record Availability(boolean ok, String reason) {
    public static Availability available(String detail) {
        return new Availability(true, detail);
    }

    public static Availability unavailable(String reason) {
        return new Availability(false, reason);
    }
}
