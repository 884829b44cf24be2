-- The schema the mysql e2e tests restore: utf8mb4 text, blobs, NULLs, JSON,
-- generated columns, foreign keys, partitions, a trigger, views, routines, an
-- event and a MyISAM table. @@rows rows per table come from seq_1_to_N.
SET NAMES utf8mb4;
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop;

CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  note TEXT NULL,
  avatar BLOB NULL,
  profile JSON NULL,
  name_upper VARCHAR(100) AS (UPPER(name)) VIRTUAL,
  name_len INT AS (CHAR_LENGTH(name)) STORED,
  created DATETIME(6) NOT NULL DEFAULT '2026-01-01 00:00:00.000000'
) ENGINE=InnoDB;

CREATE TABLE orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  customer_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE,
  KEY k_status (status)
) ENGINE=InnoDB;

CREATE TABLE events_log (
  id INT NOT NULL,
  happened DATE NOT NULL,
  payload VARBINARY(255) NULL,
  PRIMARY KEY (id, happened)
) ENGINE=InnoDB
PARTITION BY RANGE (YEAR(happened)) (
  PARTITION p2024 VALUES LESS THAN (2025),
  PARTITION p2025 VALUES LESS THAN (2026),
  PARTITION pmax VALUES LESS THAN MAXVALUE
);

CREATE TABLE legacy (
  id INT PRIMARY KEY,
  label CHAR(20) NULL,
  score DOUBLE NULL
) ENGINE=MyISAM;

CREATE TABLE audit (
  id INT PRIMARY KEY AUTO_INCREMENT,
  order_id BIGINT NOT NULL,
  note VARCHAR(200) NOT NULL
) ENGINE=InnoDB;

INSERT INTO customers (name, note, avatar, profile)
SELECT CONCAT('Ωmega-', seq, ' 日本語 😀 café'),
       IF(seq % 5 = 0, NULL, REPEAT(CONCAT('naïve résumé ', seq, ' '), 1 + seq % 7)),
       IF(seq % 3 = 0, NULL, UNHEX(SHA2(CONCAT('blob', seq), 256))),
       IF(seq % 4 = 0, NULL, JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', 'ü', seq % 10), 'ok', seq % 2 = 0))
FROM seq_1_to_@@rows;

INSERT INTO orders (customer_id, amount, status)
SELECT 1 + (seq % @@rows), ROUND(seq * 1.37, 2), ELT(1 + seq % 3, 'new', 'paid', 'shipped') FROM seq_1_to_@@rows;

INSERT INTO events_log (id, happened, payload)
SELECT seq, DATE_ADD('2024-06-01', INTERVAL seq % 900 DAY), IF(seq % 6 = 0, NULL, UNHEX(MD5(seq))) FROM seq_1_to_@@rows;

INSERT INTO legacy (id, label, score) SELECT seq, IF(seq % 7 = 0, NULL, CONCAT('L', seq)), seq / 3 FROM seq_1_to_@@rows;

CREATE VIEW paid_orders AS SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'paid';
CREATE VIEW big_paid AS SELECT * FROM paid_orders WHERE amount > 100;

DELIMITER //
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
BEGIN
  INSERT INTO audit (order_id, note) VALUES (NEW.id, CONCAT('new order of ', NEW.amount));
END//
CREATE PROCEDURE customer_total(IN cid INT, OUT total DECIMAL(14,2))
BEGIN
  SELECT IFNULL(SUM(amount), 0) INTO total FROM orders WHERE customer_id = cid;
END//
CREATE FUNCTION vat(x DECIMAL(12,2)) RETURNS DECIMAL(12,2) DETERMINISTIC
BEGIN
  RETURN x * 1.2;
END//
DELIMITER ;

CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;

INSERT INTO orders (customer_id, amount, status) VALUES (1, 999.99, 'paid');
