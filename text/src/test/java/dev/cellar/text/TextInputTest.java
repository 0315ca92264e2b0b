package dev.cellar.text;

import dev.cellar.api.CellarException;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TextInputTest {
    @Test
    void badDataFilesGetOneLineErrors(@TempDir Path dir) throws Exception {
        assertEquals(dir.resolve("missing.txt") + ": file not found",
                assertThrows(CellarException.class, () -> Corpus.read(dir.resolve("missing.txt"))).getMessage());
        Files.write(dir.resolve("empty.txt"), new byte[0]);
        assertTrue(assertThrows(CellarException.class, () -> Corpus.read(dir.resolve("empty.txt"))).getMessage().contains("file is empty"));
        Files.write(dir.resolve("bin"), new byte[]{'a', 'b', 0, 'c'});
        assertTrue(assertThrows(CellarException.class, () -> Corpus.read(dir.resolve("bin"))).getMessage().contains("NUL byte at offset 2"));
        Files.write(dir.resolve("latin1.txt"), new byte[]{'c', 'a', 'f', (byte) 0xE9, '!'});
        assertTrue(assertThrows(CellarException.class, () -> Corpus.read(dir.resolve("latin1.txt"))).getMessage()
                .contains("not valid UTF-8 at byte offset 3"));
        assertTrue(assertThrows(CellarException.class, () -> Corpus.read(dir)).getMessage().contains("is a directory"));
    }

    @Test
    void unknownPromptCharacterIsNamed() {
        Tokenizer tok = CharTokenizer.fit("abc");
        CellarException e = assertThrows(CellarException.class, () -> tok.encode("abé"));
        assertEquals("character 'é' (U+00E9) at position 2 is not in the model's vocabulary of 3 symbols; remove it from the text",
                e.getMessage());
    }

    @Test
    void impossibleSizesAreRejected() {
        assertThrows(CellarException.class, () -> new ModelConfig("lstm", 0, 256, java.util.Map.of(), 0));
        assertThrows(CellarException.class, () -> new ModelConfig("lstm", 2, -1, java.util.Map.of(), 0));
        assertTrue(assertThrows(CellarException.class, () -> new Batcher(new int[10], 4, 5)).getMessage().contains("too few"));
    }

    @Property(seed = "1", tries = 100)
    void charTokenizerRoundTrips(@ForAll String text) {
        Tokenizer tok = CharTokenizer.fit(text);
        assertEquals(text, tok.decode(tok.encode(text)));
    }

    @Property(seed = "1", tries = 60)
    void bpeRoundTripsAnyText(@ForAll String text) {
        Tokenizer tok = BpeTokenizer.fit(Fixtures.corpus(), 300);
        assertEquals(text, tok.decode(tok.encode(text)));
    }

    @Test
    void bpeCompressesItsTrainingText() {
        String text = Fixtures.corpus();
        Tokenizer tok = BpeTokenizer.fit(text, 320);
        int[] ids = tok.encode(text);
        assertTrue(ids.length < text.length() / 3, ids.length + " tokens for " + text.length() + " chars");
        Tokenizer back = Tokenizers.fromMetadata(tok.toMetadata());
        assertEquals(text, back.decode(back.encode(text)));
    }

    @Test
    void wordTokenizerSplitsPunctuationAndCapsTheVocabulary() {
        WordTokenizer tok = WordTokenizer.fit("To be, or not to be: that is the question.\nTo die, to sleep.", 6);
        assertEquals(6, tok.vocabSize());
        assertEquals("to be, to be <unk>", tok.decode(tok.encode("to be, to be question")));
        assertEquals("be, or not\nto", WordTokenizer.fit("be, or not\nto", 100).decode(WordTokenizer.fit("be, or not\nto", 100).encode("be, or not\nto")));
    }
}
