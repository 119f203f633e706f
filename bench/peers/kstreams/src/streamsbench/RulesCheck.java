package streamsbench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;

/**
 * The rules check of tests/unit/bench/: the same topology as {@link OrdersPeer}, driven by Kafka
 * Streams' TopologyTestDriver (no broker; the RocksDB store is real). Reads {@code key<TAB>json}
 * commands from stdin and prints the outcome counts as one JSON line:
 * {@code {"accepted": n, "rejected": n, "outcomes": {"accepted:ItemAdded": n, "rejected:order_not_found": n}}}.
 */
public final class RulesCheck {
    private RulesCheck() {}

    /** Runs stdin's commands through the topology and prints the counts. */
    public static void main(String[] args) throws IOException {
        Path stateDir = Files.createTempDirectory("kstreams-rules-check");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "rules-check");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        DecideTopology.Counts counts = new DecideTopology.Counts(0);
        TreeMap<String, Integer> outcomes = new TreeMap<>();
        try (TopologyTestDriver driver =
                new TopologyTestDriver(DecideTopology.build("commands", "events", counts), props)) {
            TestInputTopic<String, byte[]> input = driver.createInputTopic(
                    "commands", Serdes.String().serializer(), Serdes.ByteArray().serializer());
            TestOutputTopic<String, byte[]> output = driver.createOutputTopic(
                    "events", Serdes.String().deserializer(), Serdes.ByteArray().deserializer());
            BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = lines.readLine(); line != null; line = lines.readLine()) {
                int tab = line.indexOf('\t');
                input.pipeInput(line.substring(0, tab), line.substring(tab + 1).getBytes(StandardCharsets.UTF_8));
            }
            for (byte[] value : output.readValuesToList()) {
                JsonNode out = Wire.read(value);
                String outcome = out.has("rejected")
                        ? "rejected:" + out.get("rejected").asText()
                        : "accepted:" + out.get("type").asText();
                outcomes.merge(outcome, 1, Integer::sum);
            }
        } finally {
            try (Stream<Path> paths = Files.walk(stateDir)) {
                paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        ObjectNode result = new ObjectMapper().createObjectNode();
        result.put("accepted", counts.accepted.get()).put("rejected", counts.rejected.get());
        ObjectNode byOutcome = result.putObject("outcomes");
        outcomes.forEach(byOutcome::put);
        System.out.println(result);
    }
}
