package sluice.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.WindowStore;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Kafka Streams peer of the benchmarks (tests/bench/peers/compare.py).
 *
 * <pre>
 *   KStreamsPeer w1 BROKERS IN_TOPIC OUT_TOPIC
 *   KStreamsPeer w2 BROKERS IN_TOPIC REDIS_HOST:PORT WATERMARK_MS
 *   KStreamsPeer latency BROKERS IN_TOPIC OUT_TOPIC
 * </pre>
 *
 * w1: parse each value as JSON, keep event == "buy", write {"user","amount"}
 * to OUT_TOPIC (keyed as the input, by user). w2: sum(amount) and count() per
 * user (the record key) in tumbling 10 s windows of the ts field, grace
 * WATERMARK_MS, final results only (suppress until the window closes), each
 * written to Redis as HSET w2:&lt;window_start&gt;:&lt;user&gt; total T orders N
 * through a pipelined jedis connection in a processor.
 *
 * <p>Both run with processing.guarantee exactly_once_v2 and as many stream
 * threads as cores. Kafka Streams has no end: the peer reads the input's end
 * offsets at start (as sluice's available-now trigger does) and closes once
 * its committed offsets have reached them (and, W2, its Redis writers have
 * sent every row). Prints {"records": N, "out": M} on stdout.
 *
 * <p>latency: the latency benchmark's stateless job (tests/bench/latency.py): from the latest
 * offsets, parse, keep id % 10 != 7, write {"id","t","user"} to OUT_TOPIC, until SIGTERM. Kafka
 * Streams as is: its defaults (at least once, its producer's linger.ms 100, commit every 30 s).
 * Says "bench_peer: ready" on stderr once it runs.
 */
public final class KStreamsPeer {
  static final long WINDOW_MS = 10_000;
  static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    if (args.length == 4 && args[0].equals("w1")) {
      run(args[0], args[1], args[2], b -> w1(b, args[2], args[3]));
    } else if (args.length == 5 && args[0].equals("w2")) {
      run(args[0], args[1], args[2], b -> w2(b, args[2], args[3], Long.parseLong(args[4])));
    } else if (args.length == 4 && args[0].equals("latency")) {
      latency(args[1], args[2], args[3]);
    } else {
      System.err.println(
          "usage: KStreamsPeer w1 BROKERS IN OUT | w2 BROKERS IN REDIS_HOST:PORT WATERMARK_MS"
              + " | latency BROKERS IN OUT");
      System.exit(2);
    }
  }

  static final AtomicLong IN = new AtomicLong();
  static final AtomicLong OUT = new AtomicLong();
  /** W2: of OUT, the commands the Redis writers have sent and seen answered. */
  static final AtomicLong SYNCED = new AtomicLong();

  interface Topology {
    void build(StreamsBuilder b);
  }

  static void run(String mode, String brokers, String in, Topology t) throws Exception {
    Map<TopicPartition, Long> end = ends(brokers, in);
    String app = "bench-kstreams-" + mode + "-" + UUID.randomUUID();
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(
        StreamsConfig.NUM_STREAM_THREADS_CONFIG,
        Integer.getInteger("peer.threads", Runtime.getRuntime().availableProcessors()));
    p.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("peer.state", "/tmp/kafka-streams"));
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    StreamsBuilder b = new StreamsBuilder();
    t.build(b);
    KafkaStreams streams = new KafkaStreams(b.build(), p);
    AtomicReference<Throwable> failed = new AtomicReference<>();
    streams.setUncaughtExceptionHandler(
        e -> {
          failed.set(e);
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
              .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.start();
    // Done when the application's committed offsets (with exactly_once_v2,
    // committed in the transaction of its output) reach the end offsets:
    // every record processed, the caches flushed downstream, the output
    // committed. Then the Redis writers' last commands are sent.
    Properties ap = new Properties();
    ap.put("bootstrap.servers", brokers);
    try (Admin a = Admin.create(ap)) {
      while (failed.get() == null) {
        Map<TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> c =
            a.listConsumerGroupOffsets(app).partitionsToOffsetAndMetadata().get();
        boolean done = true;
        for (var e : end.entrySet()) {
          var o = c.get(e.getKey());
          if (e.getValue() > 0 && (o == null || o.offset() < e.getValue())) {
            done = false;
          }
        }
        if (done && SYNCED.get() == OUT.get()) {
          break;
        }
        Thread.sleep(20);
      }
    }
    streams.close(Duration.ofSeconds(120));
    streams.cleanUp();
    if (failed.get() != null) {
      failed.get().printStackTrace();
      System.exit(1);
    }
    System.out.println("{\"records\": " + IN.get() + ", \"out\": " + OUT.get() + "}");
    System.exit(0);
  }

  static void latency(String brokers, String in, String out) throws Exception {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "bench-kstreams-latency-" + UUID.randomUUID());
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("peer.state", "/tmp/kafka-streams"));
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "latest");
    StreamsBuilder b = new StreamsBuilder();
    b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
        .mapValues(KStreamsPeer::parse)
        .filter((k, r) -> r.path("id").asLong() % 10 != 7)
        .mapValues(
            r -> {
              ObjectNode o = JSON.createObjectNode();
              o.set("id", r.get("id"));
              o.set("t", r.get("t"));
              o.set("user", r.get("user"));
              return o.toString();
            })
        .to(out, Produced.with(Serdes.String(), Serdes.String()));
    KafkaStreams streams = new KafkaStreams(b.build(), p);
    java.util.concurrent.CountDownLatch stopped = new java.util.concurrent.CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            System.err.println("bench_peer: ready");
          }
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(Duration.ofSeconds(30));
                  streams.cleanUp();
                  stopped.countDown();
                }));
    streams.start();
    stopped.await();
  }

  /** The end offsets of every partition of topic. */
  static Map<TopicPartition, Long> ends(String brokers, String topic) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", brokers);
    try (Admin a = Admin.create(p)) {
      TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
      Map<TopicPartition, OffsetSpec> hi = new HashMap<>();
      d.partitions()
          .forEach(
              i -> {
                hi.put(new TopicPartition(topic, i.partition()), OffsetSpec.latest());
              });
      Map<TopicPartition, Long> n = new HashMap<>();
      for (var e : a.listOffsets(hi).all().get().entrySet()) {
        n.put(e.getKey(), e.getValue().offset());
      }
      return n;
    }
  }

  static JsonNode parse(String v) {
    try {
      return JSON.readTree(v);
    } catch (Exception e) {
      throw new IllegalArgumentException("not JSON: " + v, e);
    }
  }

  static void w1(StreamsBuilder b, String in, String out) {
    b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
        .peek((k, v) -> IN.incrementAndGet())
        .mapValues(KStreamsPeer::parse)
        .filter((k, r) -> "buy".equals(r.path("event").asText(null)))
        .mapValues(
            r -> {
              ObjectNode o = JSON.createObjectNode();
              o.set("user", r.get("user"));
              o.set("amount", r.get("amount"));
              OUT.incrementAndGet();
              SYNCED.incrementAndGet(); // no Redis in W1
              return o.toString();
            })
        .to(out, Produced.with(Serdes.String(), Serdes.String()));
  }

  /** A window's running sum and count, 16 bytes. */
  record Agg(double total, long orders) {}

  static final Serde<Agg> AGG =
      Serdes.serdeFrom(
          (Serializer<Agg>)
              (topic, a) ->
                  a == null
                      ? null
                      : ByteBuffer.allocate(16).putDouble(a.total()).putLong(a.orders()).array(),
          (Deserializer<Agg>)
              (topic, d) -> {
                if (d == null) {
                  return null;
                }
                ByteBuffer bb = ByteBuffer.wrap(d);
                return new Agg(bb.getDouble(), bb.getLong());
              });

  static void w2(StreamsBuilder b, String in, String redis, long watermarkMs) {
    String[] hp = redis.split(":");
    KStream<String, Double> amounts =
        b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
            .peek((k, v) -> IN.incrementAndGet())
            .processValues(EventTime::new);
    amounts
        .groupByKey(Grouped.with(Serdes.String(), Serdes.Double()))
        .windowedBy(
            TimeWindows.ofSizeAndGrace(Duration.ofMillis(WINDOW_MS), Duration.ofMillis(watermarkMs)))
        .aggregate(
            () -> new Agg(0, 0),
            (user, amount, a) -> new Agg(a.total() + amount, a.orders() + 1),
            Materialized.<String, Agg, WindowStore<Bytes, byte[]>>as("w2")
                .withKeySerde(Serdes.String())
                .withValueSerde(AGG))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
        .toStream()
        .process(() -> new RedisWriter(hp[0], Integer.parseInt(hp[1])));
  }

  /**
   * Parses the value once: the amount as value, ts as the record's event time. The key (the user)
   * is kept, so groupByKey needs no repartition: the input is partitioned by user already.
   */
  static final class EventTime implements FixedKeyProcessor<String, String, Double> {
    private FixedKeyProcessorContext<String, Double> ctx;

    @Override
    public void init(FixedKeyProcessorContext<String, Double> ctx) {
      this.ctx = ctx;
    }

    @Override
    public void process(FixedKeyRecord<String, String> r) {
      JsonNode j = parse(r.value());
      ctx.forward(r.withValue(j.path("amount").asDouble()).withTimestamp(j.path("ts").asLong()));
    }
  }

  /**
   * Writes each final window to Redis, pipelined: the pipeline is synced every 1000 commands, on a
   * 100 ms wall-clock punctuation and when the task closes.
   */
  static final class RedisWriter implements Processor<Windowed<String>, Agg, Void, Void> {
    private final String host;
    private final int port;
    private Jedis jedis;
    private Pipeline pipe;
    private int queued;

    RedisWriter(String host, int port) {
      this.host = host;
      this.port = port;
    }

    @Override
    public void init(ProcessorContext<Void, Void> ctx) {
      jedis = new Jedis(host, port);
      pipe = jedis.pipelined();
      ctx.schedule(Duration.ofMillis(100), PunctuationType.WALL_CLOCK_TIME, t -> sync());
    }

    @Override
    public void process(Record<Windowed<String>, Agg> r) {
      Windowed<String> w = r.key();
      Map<String, String> h = new HashMap<>();
      h.put("total", Double.toString(r.value().total()));
      h.put("orders", Long.toString(r.value().orders()));
      pipe.hset("w2:" + w.window().start() + ":" + w.key(), h);
      OUT.incrementAndGet();
      if (++queued >= 1000) {
        sync();
      }
    }

    private void sync() {
      if (queued > 0) {
        pipe.sync();
        SYNCED.addAndGet(queued);
        queued = 0;
      }
    }

    @Override
    public void close() {
      sync();
      pipe.close();
      jedis.close();
    }
  }
}
