package dev.cellar.cli;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Parses {@code 90s}, {@code 10m}, {@code 1h30m}, {@code 2h} (a bare number is minutes). */
final class Durations {
    private static final Pattern PART = Pattern.compile("(\\d+(?:\\.\\d+)?)([hms])");

    private Durations() {
    }

    static double seconds(String text) {
        String s = text.trim().toLowerCase();
        if (s.matches("\\d+(\\.\\d+)?")) {
            return Double.parseDouble(s) * 60;
        }
        Matcher m = PART.matcher(s);
        double total = 0;
        int end = 0;
        while (m.find()) {
            if (m.start() != end) {
                break;
            }
            double v = Double.parseDouble(m.group(1));
            total += switch (m.group(2)) {
                case "h" -> v * 3600;
                case "m" -> v * 60;
                default -> v;
            };
            end = m.end();
        }
        if (end != s.length() || end == 0 || total <= 0) {
            throw new UsageException("time " + text + " is not a duration; write it like 90s, 10m or 1h30m");
        }
        return total;
    }
}
