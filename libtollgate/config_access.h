/* config_access.h - reading general_settings.allowed_routes,
 * admin_only_routes and public_routes into a struct route_access
 * (route_access.h). */
#ifndef TG_CONFIG_ACCESS_H
#define TG_CONFIG_ACCESS_H

#include "config_yaml.h"
#include "route_access.h"

/* Reads the lists of gs (general_settings) into ra; -1 with ld's error set
 * when an entry is not one its list may hold (config_access.c). */
int config_parse_access(struct loader *ld, yaml_node_t *gs, struct route_access *ra);

#endif
