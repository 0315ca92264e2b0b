package dev.cellar.cli;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Parses {@code 90s}, {@code 10m}, {@code 1h30m}, {@code 2h} (a bare number is minutes); zero is not a duration. */
final class Durations {
    private static final Pattern PART = Pattern.compile("(\\d+(?:\\.\\d+)?)([hms])");

    private Durations() {
    }

    /** Seconds in {@code text}; a UsageException naming {@code flag} when it is not a positive duration. */
    static double seconds(String flag, String text) {
        String s = text.trim().toLowerCase();
        double total = 0;
        int end = 0;
        if (s.matches("\\d+(\\.\\d+)?")) {
            total = Double.parseDouble(s) * 60;
            end = s.length();
        } else {
            Matcher m = PART.matcher(s);
            while (m.find() && m.start() == end) {
                double v = Double.parseDouble(m.group(1));
                total += switch (m.group(2)) {
                    case "h" -> v * 3600;
                    case "m" -> v * 60;
                    default -> v;
                };
                end = m.end();
            }
        }
        if (end != s.length() || end == 0 || total <= 0) {
            throw new UsageException(flag + " " + text + " is not a duration; write it like 90s, 10m or 1h30m");
        }
        return total;
    }
}
