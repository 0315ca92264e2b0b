package dev.cellar.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class DurationsTest {
    @Test
    void parsesHoursMinutesSeconds() {
        assertEquals(90, Durations.seconds("--t", "90s"));
        assertEquals(600, Durations.seconds("--t", "10m"));
        assertEquals(5400, Durations.seconds("--t", "1h30m"));
        assertEquals(3600, Durations.seconds("--t", " 1H "));
        assertEquals(120, Durations.seconds("--t", "2"), "a bare number is minutes");
        assertEquals(0.5, Durations.seconds("--t", "0.5s"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "abc", "0", "0s", "-5m", "10x", "1h 30m", "m", "30s10", "1.5.2m"})
    void rejectsWhatIsNotAPositiveDuration(String text) {
        UsageException e = assertThrows(UsageException.class, () -> Durations.seconds("--time-budget", text));
        assertEquals("--time-budget " + text + " is not a duration; write it like 90s, 10m or 1h30m", e.getMessage());
    }
}
