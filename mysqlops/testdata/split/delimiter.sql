-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
USE `shop`;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
/*!50003 SET sql_mode              = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
BEGIN
  INSERT INTO audit (order_id, note) VALUES (NEW.id, CONCAT('new order; of ', NEW.amount));
END */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `customer_total`(IN cid INT, OUT total DECIMAL(14,2))
BEGIN
  SELECT IFNULL(SUM(amount), 0) INTO total FROM orders WHERE customer_id = cid; -- ;; in a comment
  SELECT ';;' INTO @x;
END ;;
DELIMITER ;
delimiter //
/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `purge_audit` ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' ON COMPLETION NOT PRESERVE DISABLE DO DELETE FROM audit WHERE id < 0 */ //
DELIMITER ;
SELECT 1;
-- Dump completed on 2026-11-25 18:19:37
