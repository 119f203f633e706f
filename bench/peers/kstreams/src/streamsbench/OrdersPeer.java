package streamsbench;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * Scenario h: the orders rules on Kafka Streams against a broker, exactly once (v2), until the
 * expected number of commands has been processed; then a clean close (which commits) and one JSON
 * line on stdout with the outcome counts and when the first command was processed (seconds since
 * the epoch). The benchmark measures the rate up to the last output on the output topic
 * (bench/peers/run.py).
 *
 * <p>Arguments: bootstrap input-topic output-topic application-id state-dir expected-commands
 * commit-interval-ms timeout-s
 */
public final class OrdersPeer {
    private OrdersPeer() {}

    /** Runs the peer; exit status 0 when every expected command was processed. */
    public static void main(String[] args) throws InterruptedException {
        if (args.length != 8) {
            System.err.println("usage: OrdersPeer bootstrap input output application-id state-dir"
                    + " expected commit-interval-ms timeout-s");
            System.exit(2);
        }
        long expected = Long.parseLong(args[5]);
        DecideTopology.Counts counts = new DecideTopology.Counts(expected);
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args[6]);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        KafkaStreams streams = new KafkaStreams(DecideTopology.build(args[1], args[2], counts), props);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setUncaughtExceptionHandler(error -> {
            failure.set(error);
            while (counts.done.getCount() > 0) {
                counts.done.countDown();
            }
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        boolean done = counts.done.await(Long.parseLong(args[7]), TimeUnit.SECONDS);
        streams.close(Duration.ofSeconds(60));
        long accepted = counts.accepted.get();
        long rejected = counts.rejected.get();
        System.out.printf(
                "{\"processed\": %d, \"accepted\": %d, \"rejected\": %d, \"complete\": %b,"
                        + " \"first_processed_at\": %d.%06d}%n",
                accepted + rejected,
                accepted,
                rejected,
                done && failure.get() == null,
                counts.firstAtMicros.get() / 1_000_000L,
                counts.firstAtMicros.get() % 1_000_000L);
        if (failure.get() != null) {
            failure.get().printStackTrace();
        }
        System.exit(done && failure.get() == null ? 0 : 1);
    }
}
